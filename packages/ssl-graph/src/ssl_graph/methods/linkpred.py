"""Link-prediction pretraining (the graph autoencoder objective of Kipf and Welling, 2016, "Variational
Graph Auto-Encoders", trained on held-out edges as in ParetoGNN's P-Link task).

Each step hides a random ``mask_rate`` of the undirected edges from message passing, encodes the rest,
and scores node pairs by the inner product of their embeddings: the hidden edges are positives, as many
random non-edges of the same graphs (PyG's ``batched_negative_sampling``) are negatives, with binary
cross entropy. Hiding the scored edges keeps the task from being solved by copying the input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch_geometric.data import Batch
from torch_geometric.utils import batched_negative_sampling

from ssl_core.errors import ConfigError
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_graph.data.graphs import GraphInfo
from ssl_graph.methods.common import build_backbone, collate_graphs, gnn_spec, unchanged
from ssl_graph.models.encoder import EncoderConfig


def split_edges(edge_index: torch.Tensor, num_nodes: int, mask_rate: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Hide a random ``mask_rate`` of the undirected edges (both directions together).

    Returns:
        ``(kept, hidden)``: the edges left for message passing ``(2, E_kept)`` (both directions) and one
        direction of each hidden edge ``(2, E_hidden)`` (self-loops are never hidden).
    """
    src, dst = edge_index
    key = torch.minimum(src, dst) * num_nodes + torch.maximum(src, dst)
    uniq, inv = torch.unique(key, return_inverse=True)
    hide = torch.rand(len(uniq), device=edge_index.device) < mask_rate
    hidden_dir = hide[inv] & (src < dst)
    return edge_index[:, ~hide[inv] | (src == dst)], edge_index[:, hidden_dir]


def link_bce(h: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Binary cross entropy of inner-product edge scores: ``pos`` edges labelled 1, ``neg`` pairs 0.

    Shapes:
        - h: ``(N, D)``; pos: ``(2, P)``; neg: ``(2, Q)``; output: scalar
    """
    pos_logit = (h[pos[0]] * h[pos[1]]).sum(-1)
    neg_logit = (h[neg[0]] * h[neg[1]]).sum(-1)
    logits = torch.cat([pos_logit, neg_logit])
    labels = torch.cat([torch.ones_like(pos_logit), torch.zeros_like(neg_logit)])
    return F.binary_cross_entropy_with_logits(logits, labels)


def link_prediction_step(encoder, batch: Batch, mask_rate: float) -> torch.Tensor:
    """One link-prediction loss on a batch: hide edges, encode, score hidden edges against sampled non-edges."""
    kept, hidden = split_edges(batch.edge_index, batch.num_nodes, mask_rate)
    if hidden.shape[1] == 0:  # nothing to predict (graphs without edges): a zero loss keeps the step valid
        return batch.x.sum() * 0.0
    h = encoder.node_embeddings(batch.x, kept)
    per_graph = max(1, hidden.shape[1] // batch.num_graphs)  # as many negatives as hidden edges, on average
    neg = batched_negative_sampling(batch.edge_index, batch.batch, num_neg_samples=per_graph)
    return link_bce(h, hidden, neg)


@dataclass
class LinkPredConfig:
    """Link-prediction settings (``--set method.<name>=<value>``).

    Args:
        encoder: the GNN.
        mask_rate: share of undirected edges hidden and predicted at each step.
    """

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    mask_rate: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.mask_rate < 1:
            raise ConfigError(f"method.mask_rate must lie in (0, 1), got {self.mask_rate}")


class LinkPred(Method):
    """Link prediction: inner-product decoder over held-out edges against random non-edges.

    Shapes:
        - batch: a PyG batch of graphs (or node neighbourhoods)
        - :meth:`embed`: a batch of ``B`` graphs -> ``(B, embed_dim)``
    """

    def __init__(self, config: LinkPredConfig, info: GraphInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        self.backbone = build_backbone(config.encoder, info)

    def pretext(self):
        return unchanged

    def collate(self):
        return collate_graphs

    def forward(self, batch: Batch) -> MethodOutput:
        return MethodOutput(link_prediction_step(self.backbone, batch, self.config.mask_rate), {})

    def backbone_spec(self) -> BackboneSpec:
        return gnn_spec(self.backbone, self.info)

"""Heads of the graph objectives that several methods train: the projection MLP, GraphMAE's masked-feature
decoder (also ParetoGNN's P-Recon task) and the inner-product link decoder (LinkPred, ParetoGNN's P-Link)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.nn import GINConv
from torch_geometric.utils import batched_negative_sampling

from ssl_core.errors import ConfigError
from ssl_core.losses import sce
from ssl_graph.pretext.masking import mask_nodes, split_edges


def mlp_head(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """``Linear -> ReLU -> Linear``: the projection head of GraphCL, GRACE and InfoGraph.

    Shapes:
        - input: ``(B, in_dim)``; output: ``(B, out_dim)``
    """
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim))


@dataclass
class MaskedFeatureConfig:
    """Masking and loss of :class:`MaskedFeatureHead` (``--set method.<name>=<value>``).

    Args:
        mask_rate: share of nodes masked (GraphMAE on MUTAG: 0.75).
        replace_rate: share of the masked nodes given a random node's features instead of ``[MASK]`` (0.1).
        alpha: exponent of the scaled cosine error (MUTAG: 2).
    """

    mask_rate: float = 0.75
    replace_rate: float = 0.1
    alpha: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.mask_rate < 1 or not 0 <= self.replace_rate < 1:
            raise ConfigError("method.mask_rate must lie in (0, 1) and method.replace_rate in [0, 1)")


class MaskedFeatureHead(nn.Module):
    """GraphMAE's ``[MASK]`` token, encoder-to-decoder projection and one-layer GIN decoder (Hou et al., 2022,
    Sec. 3); calling it with an encoder and a graph returns the masked-reconstruction loss.

    Mask ``mask_rate`` of the nodes (:func:`ssl_graph.pretext.masking.mask_nodes`), giving their features the
    learnable ``[MASK]`` token (a ``replace_rate`` share of them instead a random node's features), encode the
    corrupted graph, project, *re-mask* the masked nodes' codes (set them to zero), decode with the GIN layer
    and score the masked nodes' features with the scaled cosine error (``ssl_core.losses.sce``, eq. 3).

    Args:
        node_dim: width of the encoder's node representations.
        hidden_dim: hidden width of the decoder's MLP.
        num_features: width of the node features to rebuild.
        config: mask rate, replace rate and SCE exponent.

    Shapes:
        - forward: ``encoder, x (N, num_features), edge_index (2, E) -> scalar``
    """

    def __init__(self, node_dim: int, hidden_dim: int, num_features: int, config: MaskedFeatureConfig) -> None:
        super().__init__()
        self.config = config
        d, h, f = node_dim, hidden_dim, num_features
        self.mask_token = nn.Parameter(torch.zeros(1, f))
        self.encoder_to_decoder = nn.Linear(d, d, bias=False)
        # the decoder: one GIN layer back to the feature width, no activation on its output
        self.decoder = GINConv(nn.Sequential(nn.Linear(d, h), nn.BatchNorm1d(h), nn.PReLU(), nn.Linear(h, f)))

    def forward(self, encoder: nn.Module, x: torch.Tensor, ei: torch.Tensor) -> torch.Tensor:
        masked, token, replaced = mask_nodes(len(x), self.config.mask_rate, self.config.replace_rate, device=x.device)
        x_in = x.clone()
        x_in[token] = 0.0
        x_in[replaced] = x[torch.randint(len(x), (len(replaced),), device=x.device)]
        x_in[token] += self.mask_token  # [MASK] token
        code = self.encoder_to_decoder(encoder.node_embeddings(x_in, ei))  # (N, d)
        code = code.index_fill(0, masked, 0.0)  # re-mask: the decoder must rebuild them from their neighbours
        recon = self.decoder(code, ei)  # (N, F)
        mask = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        mask[masked] = True
        return sce(recon, x, alpha=self.config.alpha, mask=mask)


def link_bce(h: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Binary cross entropy of inner-product edge scores (the graph autoencoder's decoder; Kipf and Welling,
    2016): ``pos`` edges labelled 1, ``neg`` node pairs 0.

    Args:
        h: node embeddings.
        pos: edges to score as present.
        neg: node pairs to score as absent.

    Shapes:
        - h: ``(N, D)``; pos: ``(2, P)``; neg: ``(2, Q)``; output: scalar
    """
    pos_logit = (h[pos[0]] * h[pos[1]]).sum(-1)
    neg_logit = (h[neg[0]] * h[neg[1]]).sum(-1)
    logits = torch.cat([pos_logit, neg_logit])
    labels = torch.cat([torch.ones_like(pos_logit), torch.zeros_like(neg_logit)])
    return F.binary_cross_entropy_with_logits(logits, labels)


def link_prediction_loss(encoder: nn.Module, batch: Batch, mask_rate: float) -> torch.Tensor:
    """The link-prediction objective on a batch: hide ``mask_rate`` of the edges
    (:func:`ssl_graph.pretext.masking.split_edges`), encode the rest, and score the hidden edges against as
    many random non-edges of the same graphs (PyG's ``batched_negative_sampling``) with :func:`link_bce`.

    Args:
        encoder: a GNN with ``node_embeddings(x, edge_index)``.
        batch: a PyG batch of graphs.
        mask_rate: share of the undirected edges hidden and predicted.

    Shapes:
        - output: scalar (0 with a gradient when the batch has no edge to hide)
    """
    kept, hidden = split_edges(batch.edge_index, batch.num_nodes, mask_rate)
    if hidden.shape[1] == 0:  # nothing to predict (graphs without edges): a zero loss keeps the step valid
        return batch.x.sum() * 0.0
    h = encoder.node_embeddings(batch.x, kept)
    per_graph = max(1, hidden.shape[1] // batch.num_graphs)  # as many negatives as hidden edges, on average
    neg = batched_negative_sampling(batch.edge_index, batch.batch, num_neg_samples=per_graph)
    return link_bce(h, hidden, neg)

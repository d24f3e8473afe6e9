"""GraphMAE (Hou et al., 2022, "GraphMAE: Self-Supervised Masked Graph Autoencoders").

Section 3 of the paper: mask a random ``mask_rate`` of the nodes, replacing their features by a learnable
``[MASK]`` token (a ``replace_rate`` share of them instead by the features of random nodes), encode the
corrupted graph, project to the decoder's width, *re-mask* the masked nodes' codes (set them to zero),
decode with a one-layer GNN, and score the reconstruction of the masked nodes' features with the scaled
cosine error (``ssl_core.losses.sce``, eq. 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.nn import GINConv

from ssl_core.errors import ConfigError
from ssl_core.losses import sce
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_graph.data.graphs import GraphInfo
from ssl_graph.methods.common import build_backbone, collate_graphs, gnn_spec, unchanged
from ssl_graph.models.encoder import EncoderConfig


def mask_nodes(
    num_nodes: int, mask_rate: float, replace_rate: float, generator: torch.Generator | None = None, device=None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GraphMAE's node masking: which nodes are masked, and which of them get another node's features.

    Returns:
        ``(masked, token, replaced)``: indices of all masked nodes, of those that take the ``[MASK]`` token
        (``1 - replace_rate`` of them), and of those whose features are replaced by a random node's.
    """
    perm = torch.randperm(num_nodes, generator=generator, device=device)
    n_mask = max(1, int(round(mask_rate * num_nodes)))
    masked = perm[:n_mask]
    n_replace = int(round(replace_rate * n_mask))
    order = torch.randperm(n_mask, generator=generator, device=device)
    return masked, masked[order[n_replace:]], masked[order[:n_replace]]


@dataclass
class GraphMAEConfig:
    """GraphMAE settings (``--set method.<name>=<value>``).

    Args:
        encoder: the GNN (the paper's MUTAG setting: GIN, 5 layers of 32, sum readout).
        mask_rate: share of nodes masked (MUTAG: 0.75).
        replace_rate: share of the masked nodes given a random node's features instead of ``[MASK]`` (0.1).
        alpha: exponent of the scaled cosine error (MUTAG: 2).
    """

    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(num_layers=5, jk="last"))
    mask_rate: float = 0.75
    replace_rate: float = 0.1
    alpha: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.mask_rate < 1 or not 0 <= self.replace_rate < 1:
            raise ConfigError("method.mask_rate must lie in (0, 1) and method.replace_rate in [0, 1)")


class MaskedFeatureHead(nn.Module):
    """GraphMAE's ``[MASK]`` token, encoder-to-decoder projection and one-layer GIN decoder; calling it with an
    encoder and a graph returns the masked-reconstruction loss (also ParetoGNN's P-Recon task).

    Args:
        node_dim: width of the encoder's node representations.
        hidden_dim: hidden width of the decoder's MLP.
        num_features: width of the node features to rebuild.
        config: mask rate, replace rate and SCE exponent.

    Shapes:
        - forward: ``encoder, x (N, num_features), edge_index (2, E) -> scalar``
    """

    def __init__(self, node_dim: int, hidden_dim: int, num_features: int, config: GraphMAEConfig) -> None:
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


class GraphMAE(Method):
    """GraphMAE: masked node-feature reconstruction with re-masking and the scaled cosine error.

    Shapes:
        - batch: a PyG batch of graphs (or node neighbourhoods)
        - :meth:`embed`: a batch of ``B`` graphs -> ``(B, embed_dim)``
    """

    def __init__(self, config: GraphMAEConfig, info: GraphInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        self.backbone = build_backbone(config.encoder, info)
        self.head = MaskedFeatureHead(self.backbone.node_dim, config.encoder.hidden_dim, info.num_features, config)

    def pretext(self):
        return unchanged

    def collate(self):
        return collate_graphs

    def forward(self, batch: Batch) -> MethodOutput:
        return MethodOutput(self.head(self.backbone, batch.x, batch.edge_index), {})

    def backbone_spec(self) -> BackboneSpec:
        return gnn_spec(self.backbone, self.info)

"""GRACE (Zhu et al., 2020, "Deep Graph Contrastive Representation Learning").

Algorithm 1 of the paper: corrupt the graph twice by removing edges and masking feature columns (so
both views keep every node), encode both views with the shared GNN, project the node embeddings, and
pull each node's two views together against every other node of both views. That objective, eq. (1)-(2)
with inter- and intra-view negatives averaged over both directions, is NT-Xent over the nodes
(``ssl_core.losses.nt_xent``). For graph-level probes the node embeddings are pooled by the readout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch_geometric.data import Batch

from ssl_core.errors import ConfigError
from ssl_core.losses import nt_xent
from ssl_core.method import MethodOutput
from ssl_graph.data.graphs import GraphInfo
from ssl_graph.methods.common import TwoViewGNNMethod
from ssl_graph.models.encoder import EncoderConfig
from ssl_graph.models.heads import mlp_head
from ssl_graph.transforms.augment import AugmentConfig, grace_view


@dataclass
class GRACEConfig:
    """GRACE settings (``--set method.<name>=<value>``).

    Args:
        encoder: the GNN (the paper: 2-layer GCN).
        proj_dim: width of the projection head.
        temperature: tau of the pairwise objective (the paper: 0.5 for Cora, 0.7-0.9 elsewhere).
        view1, view2: edge removal and feature-column masking of each view; node-removing augmentations
            are refused, since GRACE contrasts each node with its own counterpart.
        max_nodes: nodes contrasted per batch, a random subset when the batch has more (GRACE's pairwise
            loss is quadratic in the nodes). Under torchrun each process contrasts its own nodes (their
            number differs between processes, so they are not gathered).
    """

    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(kind="gcn", num_layers=2, hidden_dim=64))
    proj_dim: int = 64
    temperature: float = 0.5
    view1: AugmentConfig = field(default_factory=lambda: grace_view(0.2, 0.3))
    view2: AugmentConfig = field(default_factory=lambda: grace_view(0.4, 0.4))
    max_nodes: int = 2048

    def __post_init__(self) -> None:
        for v in (self.view1, self.view2):
            if set(v.pool) - {"drop_edges", "mask_features", "none"}:
                raise ConfigError("GRACE views may only use drop_edges and mask_features (every node must stay)")


class GRACE(TwoViewGNNMethod):
    """GRACE: node-level NT-Xent between two corrupted views of the same graphs.

    Shapes:
        - batch: ``(b1, b2)``, two PyG batches of the same graphs with the same nodes
        - :meth:`embed`: a batch of ``B`` graphs -> ``(B, embed_dim)`` (pooled node embeddings)
    """

    def __init__(self, config: GRACEConfig, info: GraphInfo) -> None:
        super().__init__(config, info)
        self.projector = mlp_head(self.backbone.node_dim, config.proj_dim, config.proj_dim)

    def forward(self, batch: tuple[Batch, Batch]) -> MethodOutput:
        b1, b2 = batch
        h1 = self.backbone.node_embeddings(b1.x, b1.edge_index)  # (N, node_dim), the same N nodes in both
        h2 = self.backbone.node_embeddings(b2.x, b2.edge_index)
        if len(h1) > self.config.max_nodes:
            keep = torch.randperm(len(h1), device=h1.device)[: self.config.max_nodes]
            h1, h2 = h1[keep], h2[keep]
        loss = nt_xent(self.projector(h1), self.projector(h2), self.config.temperature)
        return MethodOutput(loss, {"nodes": float(len(h1))})

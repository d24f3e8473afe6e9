"""GraphCL (You et al., 2020, "Graph Contrastive Learning with Augmentations").

Algorithm of section 3.2: draw two augmentations of every graph (from a pool of node dropping, edge
perturbation, attribute masking and subgraph sampling), encode both with the GNN f and the readout,
project with g, and contrast the two views of each graph against the other graphs of the batch. The
objective here is NT-Xent (``ssl_core.losses.nt_xent``): the paper's eq. (3) takes only cross-view
negatives, NT-Xent also the other graphs of the same view, as in SimCLR, which GraphCL follows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch_geometric.data import Batch

from ssl_core.losses import nt_xent
from ssl_core.method import MethodOutput
from ssl_graph.data.graphs import GraphInfo
from ssl_graph.methods.common import TwoViewGNNMethod
from ssl_graph.models.encoder import EncoderConfig
from ssl_graph.models.heads import mlp_head
from ssl_graph.transforms.augment import AugmentConfig


@dataclass
class GraphCLConfig:
    """GraphCL settings (``--set method.<name>=<value>``).

    Args:
        encoder: the GNN (the paper: GIN, 3 layers of 32, sum readout, layers concatenated).
        proj_dim: width of the projection head (hidden and output).
        temperature: NT-Xent temperature (the paper: 0.2).
        view1, view2: each view's augmentation pool (the paper's "random" setting: one of node dropping,
            subgraph, edge perturbation, attribute masking per graph, strength 0.2).
        gather_distributed: take negatives from every process under torchrun.
    """

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    proj_dim: int = 128
    temperature: float = 0.2
    view1: AugmentConfig = field(default_factory=AugmentConfig)
    view2: AugmentConfig = field(default_factory=AugmentConfig)
    gather_distributed: bool = True


class GraphCL(TwoViewGNNMethod):
    """GraphCL: GNN encoder f with readout, projection g, NT-Xent between two augmented views of each graph.

    Shapes:
        - batch: ``(b1, b2)``, two PyG batches of the same ``B`` graphs, differently augmented
        - :meth:`embed`: a batch of ``B`` graphs -> ``(B, embed_dim)``
    """

    def __init__(self, config: GraphCLConfig, info: GraphInfo) -> None:
        super().__init__(config, info)
        self.projector = mlp_head(self.backbone.embed_dim, config.proj_dim, config.proj_dim)

    def forward(self, batch: tuple[Batch, Batch]) -> MethodOutput:
        b1, b2 = batch
        z1 = self.projector(self.backbone(b1))  # (B, proj_dim)
        z2 = self.projector(self.backbone(b2))
        loss = nt_xent(z1, z2, self.config.temperature, gather_distributed=self.config.gather_distributed)
        with torch.no_grad():
            pos = torch.nn.functional.cosine_similarity(z1, z2).mean()
        return MethodOutput(loss, {"pos_cos": pos})

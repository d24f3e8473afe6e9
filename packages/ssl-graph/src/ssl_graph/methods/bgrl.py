"""BGRL (Thakoor et al., 2022, "Large-Scale Representation Learning on Graphs via Bootstrapping").

Algorithm 1 of the paper: two views of the graph by edge removal and feature masking (every node
kept); the online encoder and a predictor map view 1 to a prediction of the target encoder's node
embeddings of view 2 (and symmetrically), with the negative cosine similarity of BYOL
(``ssl_core.losses.negative_cosine``); the target encoder is an exponential moving average of the online
one (``ssl_core.teacher.EMATeacher``, momentum from the trainer's ``ema_momentum`` schedule). No
negative pairs are needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch_geometric.data import Batch

from ssl_core.losses import negative_cosine
from ssl_core.method import MethodOutput
from ssl_core.teacher import EMATeacher
from ssl_graph.data.graphs import GraphInfo
from ssl_graph.methods.common import TwoViewGNNMethod
from ssl_graph.models.encoder import EncoderConfig
from ssl_graph.transforms.augment import AugmentConfig, grace_view


@dataclass
class BGRLConfig:
    """BGRL settings (``--set method.<name>=<value>``; the EMA momentum is ``train.ema_momentum``).

    Args:
        encoder: the GNN (the paper: GCN, 2 layers for the small transductive sets).
        predictor_hidden: hidden width of the predictor MLP (the paper: 512).
        view1, view2: edge removal and feature masking of each view (the paper tunes them per data set).
    """

    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(kind="gcn", num_layers=2, hidden_dim=64))
    predictor_hidden: int = 256
    view1: AugmentConfig = field(default_factory=lambda: grace_view(0.3, 0.2))
    view2: AugmentConfig = field(default_factory=lambda: grace_view(0.2, 0.3))


class BGRL(TwoViewGNNMethod):
    """BGRL: an online encoder + predictor regress the EMA target's node embeddings of the other view.

    Shapes:
        - batch: ``(b1, b2)``, two PyG batches of the same graphs with the same nodes
        - :meth:`embed`: a batch of ``B`` graphs -> ``(B, embed_dim)``
    """

    def __init__(self, config: BGRLConfig, info: GraphInfo) -> None:
        super().__init__(config, info)
        d = self.backbone.node_dim
        self.predictor = nn.Sequential(
            nn.Linear(d, config.predictor_hidden), nn.PReLU(), nn.Linear(config.predictor_hidden, d)
        )
        self.target = EMATeacher(self.backbone)

    def forward(self, batch: tuple[Batch, Batch]) -> MethodOutput:
        b1, b2 = batch
        p1 = self.predictor(self.backbone.node_embeddings(b1.x, b1.edge_index))  # (N, D)
        p2 = self.predictor(self.backbone.node_embeddings(b2.x, b2.edge_index))
        with torch.no_grad():
            t1 = self.target.module.node_embeddings(b1.x, b1.edge_index)
            t2 = self.target.module.node_embeddings(b2.x, b2.edge_index)
        loss = negative_cosine(p1, t2) + negative_cosine(p2, t1)  # symmetrised, as in the paper
        return MethodOutput(loss, {})

    def after_optimizer_step(self, step: int, values) -> None:
        self.target.update(self.backbone, values["ema_momentum"])

"""ParetoGNN (Ju et al., 2023, "Multi-task Self-supervised Graph Neural Networks Enable Stronger Task
Generalization"; seed 29).

Section 3 of the paper: one GNN encoder trained on several pretext tasks at once, whose gradients are
combined by multiple-gradient descent (MGDA; Sener and Koltun, 2018): each step solves for the convex
weights whose combination of the task gradients on the shared encoder has minimum norm, a direction
that decreases every task (a step towards the Pareto front). The weighting is the core's
``MultiTaskLoss(weighting="mgda")``. Tasks (names as in the paper's code), each with its own head:

- ``link`` (P-Link): link prediction on hidden edges (``ssl_graph.models.heads.link_prediction_loss``, as
  :mod:`.linkpred`);
- ``ming`` (P-Ming): node-graph mutual information, DGI's discriminator (``ssl_core.losses.dgi_loss``, as
  :mod:`.dgi`);
- ``minsg`` (P-MinSG): node-level contrast between two corrupted views (GRACE's views and NT-Xent, as
  :mod:`.grace`);
- ``recon`` (P-Recon): masked feature reconstruction (``ssl_graph.models.heads.MaskedFeatureHead``, GraphMAE's
  head, as :mod:`.graphmae`).

The paper's fifth task, P-Decor (CCA-SSG's decorrelation), is not implemented.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.nn import global_mean_pool

from ssl_core.errors import ConfigError
from ssl_core.losses import dgi_loss, nt_xent
from ssl_core.losses.multitask import MultiTaskLoss
from ssl_core.method import MethodOutput
from ssl_graph.data.graphs import GraphInfo, collate_views
from ssl_graph.methods.common import GNNMethod
from ssl_graph.models.encoder import EncoderConfig
from ssl_graph.models.heads import MaskedFeatureConfig, MaskedFeatureHead, link_prediction_loss, mlp_head
from ssl_graph.transforms.augment import AugmentConfig, GraphViews, Identity, build_augment, grace_view

TASKS = ("link", "ming", "minsg", "recon")


@dataclass
class ParetoGNNConfig:
    """ParetoGNN settings (``--set method.<name>=<value>``).

    Args:
        encoder: the shared GNN.
        tasks: the pretext tasks to combine (``link``, ``ming``, ``minsg``, ``recon``).
        weighting: ``mgda`` (the paper), or ``fixed`` (plain sum) for comparison.
        grad_normalization: how task gradients are normalised before the min-norm solve (``l2``, ``loss``,
            ``loss+``, ``none``).
        link_mask_rate: share of edges hidden by the link task.
        temperature: NT-Xent temperature of the minsg task.
        recon: mask settings of the recon task.
        view1, view2: the corrupted views of the minsg task.
    """

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    weighting: str = "mgda"
    grad_normalization: str = "l2"
    link_mask_rate: float = 0.2
    temperature: float = 0.5
    recon: MaskedFeatureConfig = field(default_factory=lambda: MaskedFeatureConfig(mask_rate=0.5))
    view1: AugmentConfig = field(default_factory=lambda: grace_view(0.2, 0.3))
    view2: AugmentConfig = field(default_factory=lambda: grace_view(0.4, 0.4))

    def __post_init__(self) -> None:
        bad = [t for t in self.tasks if t not in TASKS]
        if bad or not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(f"method.tasks must be distinct names among {', '.join(TASKS)}, got {self.tasks}")


class ParetoGNN(GNNMethod):
    """ParetoGNN: several graph pretext tasks on one encoder, balanced by MGDA's min-norm weights.

    Shapes:
        - batch: ``(b, b1, b2)``, the graphs and two corrupted views of them (same nodes)
        - :meth:`embed`: a batch of ``B`` graphs -> ``(B, embed_dim)``
    """

    def __init__(self, config: ParetoGNNConfig, info: GraphInfo) -> None:
        super().__init__(config, info)
        d = self.backbone.node_dim
        self.heads = nn.ModuleDict()
        if "ming" in config.tasks:
            self.heads["ming"] = nn.Linear(d, d, bias=False)  # DGI's bilinear form W (its weight)
        if "minsg" in config.tasks:
            self.heads["minsg"] = mlp_head(d, d, d)
        if "recon" in config.tasks:
            self.heads["recon"] = MaskedFeatureHead(d, config.encoder.hidden_dim, info.num_features, config.recon)
        self.combine = MultiTaskLoss(config.tasks, config.weighting, grad_normalization=config.grad_normalization)

    def pretext(self) -> GraphViews:
        return GraphViews([Identity(), build_augment(self.config.view1), build_augment(self.config.view2)])

    def collate(self):
        return collate_views

    def task_losses(self, batch: tuple[Batch, Batch, Batch]) -> dict[str, torch.Tensor]:
        """Every configured task's loss on one batch."""
        b, b1, b2 = batch
        enc, losses = self.backbone, {}
        if "link" in self.config.tasks:
            losses["link"] = link_prediction_loss(enc, b, self.config.link_mask_rate)
        if "ming" in self.config.tasks:
            h = enc.node_embeddings(b.x, b.edge_index)
            h_fake = enc.node_embeddings(b.x[torch.randperm(b.num_nodes, device=b.x.device)], b.edge_index)
            summary = torch.sigmoid(global_mean_pool(h, b.batch, b.num_graphs))
            losses["ming"] = dgi_loss(h, h_fake, summary, b.batch, self.heads["ming"].weight)
        if "minsg" in self.config.tasks:
            proj = self.heads["minsg"]
            z1 = proj(enc.node_embeddings(b1.x, b1.edge_index))
            z2 = proj(enc.node_embeddings(b2.x, b2.edge_index))
            losses["minsg"] = nt_xent(z1, z2, self.config.temperature)
        if "recon" in self.config.tasks:
            losses["recon"] = self.heads["recon"](enc, b.x, b.edge_index)
        return {t: losses[t] for t in self.config.tasks}

    def forward(self, batch: tuple[Batch, Batch, Batch]) -> MethodOutput:
        losses = self.task_losses(batch)
        total, weights = self.combine(losses, shared_params=list(self.backbone.parameters()))
        logs = {f"loss_{t}": v.detach() for t, v in losses.items()}
        logs.update({f"w_{t}": w for t, w in weights.items()})
        return MethodOutput(total, logs)

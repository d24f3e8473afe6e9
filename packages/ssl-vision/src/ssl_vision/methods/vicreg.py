"""VICReg (Bardes, Ponce and LeCun, 2022, "VICReg: Variance-Invariance-Covariance Regularization").

Algorithm 1 of the paper: embed two views with the backbone and a 3-layer expander; the loss keeps the two
embeddings close (invariance), each dimension's standard deviation above 1 along the batch (variance) and
the dimensions decorrelated (covariance), with weights 25, 25 and 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ssl_core.losses import vicreg
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.common import backbone_spec, build_backbone
from ssl_vision.models.heads import projection_mlp
from ssl_vision.models.resnet import ResNetConfig
from ssl_vision.models.vit import ViTConfig
from ssl_vision.transforms.views import MultiView, View, ViewConfig, byol_views


@dataclass
class VICRegConfig:
    """VICReg settings (``--set method.<name>=<value>``).

    Args:
        backbone: the ResNet (default: ``ResNetConfig.slim()``, 512-d).
        vit: a ViT instead of the ResNet when set.
        proj_dim: width of the expander's layers and output (8192 in the paper; 1024 here).
        sim_coeff, std_coeff, cov_coeff: weights of invariance, variance and covariance (25, 25, 1).
        views: the two views (the paper uses BYOL's pair).
        gather_distributed: variance and covariance over every process's batch under torchrun.
    """

    backbone: ResNetConfig = field(default_factory=ResNetConfig.slim)
    vit: ViTConfig | None = None
    proj_dim: int = 1024
    sim_coeff: float = 25.0
    std_coeff: float = 25.0
    cov_coeff: float = 1.0
    views: list[ViewConfig] = field(default_factory=byol_views)
    gather_distributed: bool = True


class VICReg(Method):
    """VICReg: invariance + variance + covariance terms on two views' expansions.

    Shapes:
        - batch: ``(x1, x2)``, two ``(B, C, H, W)`` views
        - :meth:`embed`: ``(B, C, H, W) -> (B, embed_dim)``
    """

    def __init__(self, config: VICRegConfig, info: ImageInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        self.backbone = build_backbone(config.backbone, info, config.vit)
        self.expander = projection_mlp(self.backbone.embed_dim, config.proj_dim, config.proj_dim, 3)

    def pretext(self) -> MultiView:
        return MultiView([View(v, self.info) for v in self.config.views[:2]])

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> MethodOutput:
        z1, z2 = self.expander(self.backbone(torch.cat(batch[:2]))).chunk(2)  # (B, proj_dim) each
        c = self.config
        loss = vicreg(z1, z2, c.sim_coeff, c.std_coeff, c.cov_coeff, gather_distributed=c.gather_distributed)
        return MethodOutput(loss, {})

    def backbone_spec(self) -> BackboneSpec:
        return backbone_spec(self.backbone, self.info)

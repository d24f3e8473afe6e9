"""Barlow Twins (Zbontar et al., 2021, "Barlow Twins: Self-Supervised Learning via Redundancy Reduction").

Algorithm 1 of the paper: embed two views with the backbone and a 3-layer projector, standardise each
projection dimension along the batch, and push the cross-correlation matrix of the two views towards the
identity -- invariance on the diagonal, redundancy reduction off it (weight lambda).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ssl_core.losses import barlow_twins
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.common import backbone_spec, build_backbone
from ssl_vision.models.heads import projection_mlp
from ssl_vision.models.resnet import ResNetConfig
from ssl_vision.models.vit import ViTConfig
from ssl_vision.transforms.views import MultiView, View, ViewConfig, byol_views


@dataclass
class BarlowTwinsConfig:
    """Barlow Twins settings (``--set method.<name>=<value>``).

    Args:
        backbone: the ResNet (default: ``ResNetConfig.slim()``, 512-d).
        vit: a ViT instead of the ResNet when set.
        proj_dim: width of the projector's layers and output (8192 in the paper; 1024 here).
        lambda_: weight of the off-diagonal term (5e-3 in the paper).
        views: the two views (the paper uses BYOL's asymmetric pair).
        gather_distributed: standardise and correlate over every process's batch under torchrun.
    """

    backbone: ResNetConfig = field(default_factory=ResNetConfig.slim)
    vit: ViTConfig | None = None
    proj_dim: int = 1024
    lambda_: float = 5e-3
    views: list[ViewConfig] = field(default_factory=byol_views)
    gather_distributed: bool = True


class BarlowTwins(Method):
    """Barlow Twins: cross-correlation of two views' projections pushed towards the identity.

    Shapes:
        - batch: ``(x1, x2)``, two ``(B, C, H, W)`` views
        - :meth:`embed`: ``(B, C, H, W) -> (B, embed_dim)``
    """

    def __init__(self, config: BarlowTwinsConfig, info: ImageInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        self.backbone = build_backbone(config.backbone, info, config.vit)
        self.projector = projection_mlp(self.backbone.embed_dim, config.proj_dim, config.proj_dim, 3)

    def pretext(self) -> MultiView:
        return MultiView([View(v, self.info) for v in self.config.views[:2]])

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> MethodOutput:
        z1, z2 = self.projector(self.backbone(torch.cat(batch[:2]))).chunk(2)  # (B, proj_dim) each
        c = self.config
        return MethodOutput(barlow_twins(z1, z2, c.lambda_, gather_distributed=c.gather_distributed), {})

    def backbone_spec(self) -> BackboneSpec:
        return backbone_spec(self.backbone, self.info)

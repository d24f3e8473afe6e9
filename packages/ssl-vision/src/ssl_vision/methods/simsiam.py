"""SimSiam (Chen and He, 2021, "Exploring Simple Siamese Representation Learning").

Algorithm 1 of the paper: one encoder f (backbone + 3-layer projector with BatchNorm on every layer) and
a bottleneck predictor h; for two views, ``L = D(p1, stopgrad(z2))/2 + D(p2, stopgrad(z1))/2`` with D the
negative cosine similarity. The stop-gradient alone prevents collapse: no negatives, no momentum encoder.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ssl_core.losses import negative_cosine
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.common import backbone_spec, build_backbone
from ssl_vision.models.heads import projection_mlp
from ssl_vision.models.resnet import ResNetConfig
from ssl_vision.models.vit import ViTConfig
from ssl_vision.transforms.views import MultiView, View, ViewConfig


@dataclass
class SimSiamConfig:
    """SimSiam settings (``--set method.<name>=<value>``).

    Args:
        backbone: the ResNet (default: ``ResNetConfig.slim()``, 512-d).
        vit: a ViT instead of the ResNet when set.
        proj_dim: width of the projector's layers and output (2048 in the paper).
        pred_hidden_dim: the predictor's bottleneck (512 = 2048 / 4 in the paper).
        views: the augmentations of both views (SimCLR's).
    """

    backbone: ResNetConfig = field(default_factory=ResNetConfig.slim)
    vit: ViTConfig | None = None
    proj_dim: int = 512
    pred_hidden_dim: int = 128
    views: ViewConfig = field(default_factory=ViewConfig)


class SimSiam(Method):
    """SimSiam: encoder + predictor, stop-gradient on the other view's projection.

    Shapes:
        - batch: ``(x1, x2)``, two ``(B, C, H, W)`` views
        - :meth:`embed`: ``(B, C, H, W) -> (B, embed_dim)``
    """

    def __init__(self, config: SimSiamConfig, info: ImageInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        c = config
        self.backbone = build_backbone(c.backbone, info, c.vit)
        self.projector = projection_mlp(self.backbone.embed_dim, c.proj_dim, c.proj_dim, 3, last_bn=True)
        self.predictor = projection_mlp(c.proj_dim, c.pred_hidden_dim, c.proj_dim, 2)

    def pretext(self) -> MultiView:
        view = View(self.config.views, self.info)
        return MultiView([view, view])

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> MethodOutput:
        z = self.projector(self.backbone(torch.cat(batch[:2])))  # (2B, proj_dim)
        p1, p2 = self.predictor(z).chunk(2)
        z1, z2 = z.detach().chunk(2)  # stop-gradient
        loss = 0.5 * negative_cosine(p1, z2) + 0.5 * negative_cosine(p2, z1)
        # the paper's collapse monitor: per-channel std of the normalised output (1/sqrt(d) when healthy, 0 collapsed)
        return MethodOutput(loss, {"z_std": F.normalize(z1, dim=1).std(dim=0).mean()})

    def backbone_spec(self) -> BackboneSpec:
        return backbone_spec(self.backbone, self.info)

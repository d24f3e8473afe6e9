"""BYOL (Grill et al., 2020, "Bootstrap Your Own Latent").

Algorithm 1 of the paper: an online network (backbone, projector, predictor) predicts, for each of two
asymmetrically augmented views, the target network's projection of the other view; the target network
is an exponential moving average of the online backbone and projector, and gets no gradient. The loss
of a pair is ``2 - 2 cos(p, z')``, summed over both orderings; the target moves after each step with the
momentum of the trainer's ``train.ema_momentum`` schedule (0.996 -> 1 in the paper, cosine).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from ssl_core.losses import negative_cosine
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_core.teacher import EMATeacher
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.common import backbone_spec, build_backbone
from ssl_vision.models.heads import projection_mlp
from ssl_vision.models.resnet import ResNetConfig
from ssl_vision.models.vit import ViTConfig
from ssl_vision.transforms.views import MultiView, View, ViewConfig, byol_views


@dataclass
class BYOLConfig:
    """BYOL settings (``--set method.<name>=<value>``).

    Args:
        backbone: the ResNet (default: ``ResNetConfig.slim()``, 512-d).
        vit: a ViT instead of the ResNet when set.
        proj_hidden_dim: hidden width of projector and predictor (4096 in the paper).
        proj_dim: output size of both (256).
        views: the asymmetric pair of views (blur always on the first, solarisation on the second).
    """

    backbone: ResNetConfig = field(default_factory=ResNetConfig.slim)
    vit: ViTConfig | None = None
    proj_hidden_dim: int = 1024
    proj_dim: int = 256
    views: list[ViewConfig] = field(default_factory=byol_views)


class BYOL(Method):
    """BYOL: online network with predictor, EMA target network, symmetric normalised-MSE loss.

    Shapes:
        - batch: ``(x1, x2)``, two ``(B, C, H, W)`` views
        - :meth:`embed`: ``(B, C, H, W) -> (B, embed_dim)``
    """

    def __init__(self, config: BYOLConfig, info: ImageInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        c = config
        self.backbone = build_backbone(c.backbone, info, c.vit)
        self.projector = projection_mlp(self.backbone.embed_dim, c.proj_hidden_dim, c.proj_dim)
        self.predictor = projection_mlp(c.proj_dim, c.proj_hidden_dim, c.proj_dim)
        self.target = EMATeacher({"backbone": self.backbone, "projector": self.projector})

    def pretext(self) -> MultiView:
        return MultiView([View(v, self.info) for v in self.config.views[:2]])

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> MethodOutput:
        x = torch.cat(batch[:2])  # both views in one pass: (2B, C, H, W)
        p1, p2 = self.predictor(self.projector(self.backbone(x))).chunk(2)  # online predictions
        with torch.no_grad():
            z1, z2 = self.target.module["projector"](self.target.module["backbone"](x)).chunk(2)  # targets
        # 2 - 2 cos(p, z) for each ordering (eq. 2 and its symmetrisation)
        loss = (2 + 2 * negative_cosine(p1, z2)) + (2 + 2 * negative_cosine(p2, z1))
        return MethodOutput(loss, {})

    def after_optimizer_step(self, step: int, values: Mapping[str, float]) -> None:
        self.target.update({"backbone": self.backbone, "projector": self.projector}, values["ema_momentum"])

    def backbone_spec(self) -> BackboneSpec:
        return backbone_spec(self.backbone, self.info)

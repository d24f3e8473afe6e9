"""MoCo v3 (Chen, Xie and He, 2021, "An Empirical Study of Training Self-Supervised Vision Transformers").

Algorithm 1 of the paper: the base encoder (backbone + 3-layer projector) and a prediction head map each
of two views to a query; the momentum encoder (an EMA of backbone + projector) maps both views to keys.
There is no queue: the negatives are the other keys of the (global) batch, and the loss is symmetric,

    ctr(q1, k2) + ctr(q2, k1),   ctr(q, k) = 2 tau * InfoNCE(q, k; tau).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from ssl_core.losses import info_nce
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_core.teacher import EMATeacher
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.common import backbone_spec, build_backbone
from ssl_vision.models.heads import projection_mlp
from ssl_vision.models.resnet import ResNetConfig
from ssl_vision.models.vit import ViTConfig
from ssl_vision.transforms.views import MultiView, View, ViewConfig, byol_views


@dataclass
class MoCoV3Config:
    """MoCo v3 settings (``--set method.<name>=<value>``).

    Args:
        backbone: the ResNet (default: ``ResNetConfig.slim()``, 512-d).
        vit: a ViT instead of the ResNet when set (the paper's setting; ``method.vit={}``).
        proj_hidden_dim: hidden width of projector and predictor (4096 in the paper).
        proj_dim: output size of both (256).
        temperature: :math:`\\tau` (0.2 for ViT, 1.0 for ResNet-50 at batch 4096; 0.2 as solo-learn on CIFAR).
        views: the two views (MoCo v3 uses BYOL's asymmetric pair).
        gather_distributed: take negative keys from every process under torchrun.
    The momentum encoder follows the trainer's ``train.ema_momentum`` schedule (0.99 -> 1, cosine).
    """

    backbone: ResNetConfig = field(default_factory=ResNetConfig.slim)
    vit: ViTConfig | None = None
    proj_hidden_dim: int = 1024
    proj_dim: int = 256
    temperature: float = 0.2
    views: list[ViewConfig] = field(default_factory=byol_views)
    gather_distributed: bool = True


class MoCoV3(Method):
    """MoCo v3: base encoder + predictor against a momentum encoder, symmetric in-batch InfoNCE.

    Shapes:
        - batch: ``(x1, x2)``, two ``(B, C, H, W)`` views
        - :meth:`embed`: ``(B, C, H, W) -> (B, embed_dim)``
    """

    def __init__(self, config: MoCoV3Config, info: ImageInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        c = config
        self.backbone = build_backbone(c.backbone, info, c.vit)
        # projector: 3 layers, BN on every layer (the output's without affine); predictor: 2 layers
        self.projector = projection_mlp(self.backbone.embed_dim, c.proj_hidden_dim, c.proj_dim, 3, last_bn=True)
        self.predictor = projection_mlp(c.proj_dim, c.proj_hidden_dim, c.proj_dim, 2)
        self.momentum_encoder = EMATeacher({"backbone": self.backbone, "projector": self.projector})

    def pretext(self) -> MultiView:
        return MultiView([View(v, self.info) for v in self.config.views[:2]])

    def contrastive(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        t = self.config.temperature
        return 2 * t * info_nce(q, k, temperature=t, gather_distributed=self.config.gather_distributed)

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> MethodOutput:
        x = torch.cat(batch[:2])  # both views in one pass: (2B, C, H, W)
        q1, q2 = self.predictor(self.projector(self.backbone(x))).chunk(2)  # (B, proj_dim) each
        with torch.no_grad():
            teacher = self.momentum_encoder.module
            k1, k2 = teacher["projector"](teacher["backbone"](x)).chunk(2)
        return MethodOutput(self.contrastive(q1, k2) + self.contrastive(q2, k1), {})

    def after_optimizer_step(self, step: int, values: Mapping[str, float]) -> None:
        parts = {"backbone": self.backbone, "projector": self.projector}
        self.momentum_encoder.update(parts, values["ema_momentum"])

    def backbone_spec(self) -> BackboneSpec:
        return backbone_spec(self.backbone, self.info)

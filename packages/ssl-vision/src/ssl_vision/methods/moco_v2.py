"""MoCo v2 (Chen et al., 2020, "Improved Baselines with Momentum Contrastive Learning"; MoCo: He et al., 2020).

Algorithm 1 of MoCo: a query encoder (backbone + 2-layer MLP head, the v2 change) encodes one view, a
momentum encoder -- an exponential moving average of the query encoder -- encodes the other as the positive
key; the negatives are the keys of earlier batches, kept in a first-in-first-out queue. The loss is
InfoNCE; after each step the momentum encoder moves towards the query encoder and the keys are enqueued.

Single-process training has no "shuffling BN" (MoCo shuffles the key batch across GPUs so that BatchNorm
cannot leak which key is the positive); here both encoders normalise over their own whole batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from ssl_core.losses import info_nce
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_core.teacher import EMATeacher, FeatureQueue
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.common import backbone_spec, build_backbone
from ssl_vision.models.heads import projection_mlp
from ssl_vision.models.resnet import ResNetConfig
from ssl_vision.models.vit import ViTConfig
from ssl_vision.transforms.views import MultiView, View, ViewConfig


@dataclass
class MoCoV2Config:
    """MoCo v2 settings (``--set method.<name>=<value>``).

    Args:
        backbone: the ResNet (default: ``ResNetConfig.slim()``, 512-d).
        vit: a ViT instead of the ResNet when set.
        proj_hidden_dim: hidden width of the MLP head (2048 in the paper).
        proj_dim: key / query size (128).
        temperature: InfoNCE temperature (0.2 in MoCo v2).
        queue_size: number of negative keys (65536 on ImageNet; 4096 here, as lightly's CIFAR-10 benchmark).
        views: the augmentations of both views (MoCo v2 = SimCLR's, with blur).
    The momentum of the key encoder is the trainer's ``train.ema_momentum`` schedule.
    """

    backbone: ResNetConfig = field(default_factory=ResNetConfig.slim)
    vit: ViTConfig | None = None
    proj_hidden_dim: int = 512
    proj_dim: int = 128
    temperature: float = 0.2
    queue_size: int = 4096
    views: ViewConfig = field(default_factory=ViewConfig)
    gather_distributed: bool = True


class MoCoV2(Method):
    """MoCo v2: query encoder, momentum key encoder, queue of negative keys, InfoNCE.

    Shapes:
        - batch: ``(x_query, x_key)``, two ``(B, C, H, W)`` views
        - :meth:`embed`: ``(B, C, H, W) -> (B, embed_dim)``
    """

    def __init__(self, config: MoCoV2Config, info: ImageInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        self.backbone = build_backbone(config.backbone, info, config.vit)
        self.projector = projection_mlp(  # MoCo v2's head: fc -> ReLU -> fc, no BatchNorm
            self.backbone.embed_dim, config.proj_hidden_dim, config.proj_dim, batch_norm=False
        )
        self.key_encoder = EMATeacher({"backbone": self.backbone, "projector": self.projector})
        self.queue = FeatureQueue(config.queue_size, config.proj_dim)

    def pretext(self) -> MultiView:
        view = View(self.config.views, self.info)
        return MultiView([view, view])

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> MethodOutput:
        x_q, x_k = batch
        q = self.projector(self.backbone(x_q))  # (B, proj_dim)
        with torch.no_grad():
            k = self.key_encoder.module["projector"](self.key_encoder.module["backbone"](x_k))
        # until the first keys are queued (the very first step), the other keys of the batch are the negatives
        negatives = self.queue.features.to(q.dtype) if len(self.queue) else None
        loss = info_nce(q, k, negatives, temperature=self.config.temperature)
        self.queue.enqueue(k, gather_distributed=self.config.gather_distributed)  # after use, as MoCo
        return MethodOutput(loss, {})

    def after_optimizer_step(self, step: int, values: Mapping[str, float]) -> None:
        self.key_encoder.update({"backbone": self.backbone, "projector": self.projector}, values["ema_momentum"])

    def backbone_spec(self) -> BackboneSpec:
        return backbone_spec(self.backbone, self.info)

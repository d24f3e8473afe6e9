"""DINO (Caron et al., 2021, "Emerging Properties in Self-Supervised Vision Transformers").

Algorithm 1 of the paper: a student (backbone + DINO head) sees every multi-crop view; a teacher -- an EMA
of the student -- sees the global views only. The teacher's outputs are centred (an EMA of their batch
mean) and sharpened (a low temperature), and the student matches them by cross-entropy on every pair of
different views. Schedules: teacher temperature (linear warm-up), EMA momentum (cosine to 1) and weight
decay (cosine, 0.04 -> 0.4) are per-step arrays; the head's last layer is frozen during the first steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from ssl_core.losses import DINOLoss
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_core.teacher import EMATeacher, teacher_temperature_schedule
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.common import backbone_spec, build_backbone
from ssl_vision.models.heads import DINOHead
from ssl_vision.models.resnet import ResNetConfig
from ssl_vision.models.vit import ViTConfig
from ssl_vision.transforms.views import MultiCropConfig, MultiView, multicrop_transform


@dataclass
class DINOConfig:
    """DINO settings (``--set method.<name>=<value>``).

    Args:
        backbone: the ResNet (default: ``ResNetConfig.slim()``, 512-d).
        vit: a ViT instead of the ResNet when set (the paper's setting; ``method.vit={}``).
        head_hidden_dim: hidden width of the head's MLP (2048 in the paper).
        bottleneck_dim: the normalised bottleneck (256).
        out_dim: prototypes K (65536 on ImageNet; 1024 here).
        student_temp: :math:`\\tau_s` (0.1).
        warmup_teacher_temp, teacher_temp: :math:`\\tau_t` rises linearly from the first to the second over
            ``teacher_temp_warmup_epochs`` (0.04 -> 0.07 over 30 epochs in the paper's long runs).
        teacher_temp_warmup_epochs: length of that warm-up.
        center_momentum: EMA momentum of the centre (0.9).
        freeze_last_layer_steps: steps during which the head's last layer gets no gradient (one epoch of
            100 or more in the paper; 50 steps, a fifth of the one-epoch default run, here).
        crops: the multi-crop views (2 global 28-px crops, 6 local 12-px crops).
    The teacher follows the trainer's ``train.ema_momentum`` schedule; weight decay the trainer's
    ``train.weight_decay`` -> ``train.weight_decay_end`` schedule.
    """

    backbone: ResNetConfig = field(default_factory=ResNetConfig.slim)
    vit: ViTConfig | None = None
    head_hidden_dim: int = 512
    bottleneck_dim: int = 128
    out_dim: int = 1024
    student_temp: float = 0.1
    warmup_teacher_temp: float = 0.04
    teacher_temp: float = 0.07
    teacher_temp_warmup_epochs: float = 1.0
    center_momentum: float = 0.9
    freeze_last_layer_steps: int = 50
    crops: MultiCropConfig = field(default_factory=MultiCropConfig)


class DINO(Method):
    """DINO: self-distillation with no labels -- student on all crops, EMA teacher on the global ones.

    Shapes:
        - batch: ``len(crops.global_views)`` tensors ``(B, C, S, S)``, then ``crops.n_local`` tensors
          ``(B, C, s, s)``
        - :meth:`embed`: ``(B, C, S, S) -> (B, embed_dim)``
    """

    ddp_find_unused_parameters = True  # the last layer gets no gradient while frozen

    def __init__(self, config: DINOConfig, info: ImageInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        c = config
        self.n_global = len(c.crops.global_views)
        self.backbone = build_backbone(c.backbone, info, c.vit)
        self.head = DINOHead(self.backbone.embed_dim, c.head_hidden_dim, c.bottleneck_dim, c.out_dim)
        self.teacher = EMATeacher({"backbone": self.backbone, "head": self.head})
        self.loss = DINOLoss(c.out_dim, c.warmup_teacher_temp, c.student_temp, c.center_momentum)

    def pretext(self) -> MultiView:
        return multicrop_transform(self.config.crops, self.info)

    def schedules(self, total_steps: int, steps_per_epoch: int) -> dict[str, np.ndarray]:
        c = self.config
        warmup = round(c.teacher_temp_warmup_epochs * steps_per_epoch)
        temps = teacher_temperature_schedule(c.warmup_teacher_temp, c.teacher_temp, total_steps, warmup)
        return {"teacher_temp": temps}

    def forward(self, batch: tuple[torch.Tensor, ...]) -> MethodOutput:
        c, step = self.config, self.current_step
        frozen = step.index < c.freeze_last_layer_steps
        globals_, locals_ = list(batch[: self.n_global]), list(batch[self.n_global :])
        b = len(batch[0])
        # same-sized crops share one pass: (V * B, ...) -> (V, B, K)
        student = [self.head(self.backbone(torch.cat(globals_)), frozen)]
        if locals_:
            student.append(self.head(self.backbone(torch.cat(locals_)), frozen))
        student_out = torch.cat(student).view(len(batch), b, -1)
        with torch.no_grad():
            t = self.teacher.module
            teacher_out = t["head"](t["backbone"](torch.cat(globals_))).view(self.n_global, b, -1)
        teacher_temp = step["teacher_temp"]
        loss = self.loss(student_out, teacher_out, teacher_temp)
        return MethodOutput(loss, {"teacher_temp": teacher_temp})

    def after_optimizer_step(self, step: int, values: Mapping[str, float]) -> None:
        self.teacher.update({"backbone": self.backbone, "head": self.head}, values["ema_momentum"])

    def backbone_spec(self) -> BackboneSpec:
        return backbone_spec(self.backbone, self.info)

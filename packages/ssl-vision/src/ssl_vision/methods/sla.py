"""SLA (Lee, Hwang and Shin, 2020, "Self-supervised Label Augmentation via Input Transformations").

A supervised recipe that augments the labels with a self-supervised one: every training image is seen under
the ``M = 4`` rotations ``t_j = rot90(., j)`` and one joint head classifies the ``C * M`` pairs (class,
rotation), the pair ``(i, j)`` at index ``i * M + j`` (:func:`ssl_core.losses.sla_joint_labels`), with
cross-entropy (the paper's eq. 4). Aggregated inference (eq. 6, :func:`ssl_core.losses.sla_aggregate`)
averages each class's joint logit over the four rotated copies of an image; self-distillation (eq. 7,
:func:`ssl_core.losses.sla_self_distillation`) trains a plain single-pass classifier head on the unrotated
image to match the aggregated prediction. Both losses are summed (SLA+SD, as the reference code
github.com/hankook/SLA). ``mode="ce"`` is the baseline: plain cross-entropy of the single-pass head on the
unrotated views, same backbone, same views, same budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.errors import ConfigError
from ssl_core.eval import embed_inputs
from ssl_core.losses import sla_aggregate, sla_joint_labels, sla_self_distillation
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.common import backbone_spec, build_backbone
from ssl_vision.models.resnet import ResNetConfig
from ssl_vision.models.vit import ViTConfig
from ssl_vision.pretext.labeled import LabeledViews
from ssl_vision.transforms.views import View, ViewConfig

MODES = ("sla", "ce")
N_ROTATIONS = 4


def sla_view() -> ViewConfig:
    """The supervised augmentation: a random resized crop of 50-100% of the image and a horizontal flip (the
    paper's CIFAR setting is a padded random crop and a flip), no colour changes."""
    return ViewConfig(crop_scale=[0.5, 1.0], jitter_prob=0.0, grayscale_prob=0.0)


@dataclass
class SLAConfig:
    """SLA settings (``--set method.<name>=<value>``).

    Args:
        backbone: the ResNet (:meth:`~ssl_vision.models.resnet.ResNetConfig.slim`, as the other ResNet recipes).
        vit: a ViT instead of the ResNet when set (``method.vit={}`` for ViT-tiny).
        mode: ``sla`` (joint rotation-label head + self-distilled single head) or ``ce`` (plain cross-entropy
            of the single head on the unrotated views: the baseline).
        sd_temperature: temperature of the self-distillation (1 in the paper).
        sd_weight: weight of the self-distillation loss beside the joint cross-entropy (1: SLA+SD's sum).
        view: the augmentation of each training image (before the rotations).
    """

    backbone: ResNetConfig = field(default_factory=ResNetConfig.slim)
    vit: ViTConfig | None = None
    mode: str = "sla"
    sd_temperature: float = 1.0
    sd_weight: float = 1.0
    view: ViewConfig = field(default_factory=sla_view)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"method.mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.sd_temperature <= 0 or self.sd_weight < 0:
            raise ConfigError(
                f"method.sd_temperature must be positive and method.sd_weight non-negative, "
                f"got {self.sd_temperature} and {self.sd_weight}"
            )


def rotations(images: torch.Tensor, n: int = N_ROTATIONS) -> torch.Tensor:
    """Every image under the ``n`` rotations by multiples of 90 degrees, ``torch.rot90(x, j, (2, 3))`` for
    ``j = 0 .. n - 1``, sample-major: row ``b * n + j`` is image ``b`` rotated by ``j`` quarter turns (the
    order of :func:`ssl_core.losses.sla_joint_labels`' columns).

    Shapes:
        - images: ``(B, C, H, W)`` square
        - output: ``(B * n, C, H, W)``
    """
    return torch.stack([torch.rot90(images, j, (2, 3)) for j in range(n)], dim=1).flatten(0, 1)


def _num_classes(info: ImageInfo) -> int:
    if not info.num_classes:
        raise ConfigError(
            "this recipe trains a classifier but the data has no classes: use labelled data with data.train_labels=true"
        )
    return int(info.num_classes)


class SLA(Method):
    """SLA+SD: a joint (class x rotation) head, aggregated inference, a self-distilled single-pass head.

    Shapes:
        - batch: ``{"views": ((B, C, H, W) normalised float,), "label": (B,) int64}``
        - :meth:`joint_logits`: ``(B, C, H, W) -> (B, M, num_classes * M)``
        - :meth:`embed`: ``(B, C, H, W) -> (B, embed_dim)`` (the backbone's features)
    """

    def __init__(self, config: SLAConfig, info: ImageInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        self.num_classes = _num_classes(info)
        self.backbone = build_backbone(config.backbone, info, config.vit)
        d = self.backbone.embed_dim
        self.classifier = nn.Linear(d, self.num_classes)  # the single-pass head (SD student, or CE's head)
        self.joint_head = nn.Linear(d, self.num_classes * N_ROTATIONS) if config.mode == "sla" else None

    def pretext(self) -> LabeledViews:
        return LabeledViews([View(self.config.view, self.info)])

    def joint_logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The joint logits of each image under every rotation and the features of the unrotated images.

        Shapes:
            - images: ``(B, C, H, W)``
            - output: ``(B, M, C_cls * M)`` and ``(B, embed_dim)``
        """
        b = len(images)
        features = self.backbone(rotations(images))  # (B * M, D), sample-major
        joint = self.joint_head(features).view(b, N_ROTATIONS, -1)
        return joint, features.view(b, N_ROTATIONS, -1)[:, 0]

    def forward(self, batch: dict[str, torch.Tensor]) -> MethodOutput:
        (images,), labels = batch["views"], batch["label"]
        if self.config.mode == "ce":
            logits = self.classifier(self.backbone(images))
            loss = F.cross_entropy(logits, labels)
            return MethodOutput(loss, {"acc": (logits.argmax(1) == labels).float().mean().detach()})
        joint, unrotated = self.joint_logits(images)
        targets = sla_joint_labels(labels, N_ROTATIONS)  # (B, M)
        loss_sla = F.cross_entropy(joint.flatten(0, 1), targets.flatten())
        loss_sd = sla_self_distillation(self.classifier(unrotated), joint, self.config.sd_temperature)
        acc = (sla_aggregate(joint.detach()).argmax(1) == labels).float().mean()
        return MethodOutput(
            loss_sla + self.config.sd_weight * loss_sd,
            {"loss_sla": loss_sla.detach(), "loss_sd": loss_sd.detach(), "acc_aggregated": acc},
        )

    @torch.no_grad()
    def head_scores(self, bundle: Any, device: torch.device) -> dict[str, float]:
        """Top-1 accuracies of the heads on ``bundle.probe_test``: ``sla_aggregated_top1`` (eq. 6),
        ``sla_single_top1`` (the joint head on the unrotated image, its rotation-0 entries),
        ``sla_distilled_top1`` (the self-distilled single-pass head); ``ce_top1`` in ``mode="ce"``."""
        split = bundle.probe_test
        if split is None or not len(split.labels):
            return {}
        if self.config.mode == "ce":
            names = ("ce_top1",)
            heads = lambda x: self.classifier(self.backbone(x))[:, None]  # noqa: E731  (B, 1, C)
        else:
            names = ("sla_aggregated_top1", "sla_single_top1", "sla_distilled_top1")

            def heads(x: torch.Tensor) -> torch.Tensor:
                joint, unrotated = self.joint_logits(x)
                single = joint[:, 0].view(len(x), self.num_classes, N_ROTATIONS)[:, :, 0]
                return torch.stack([sla_aggregate(joint), single, self.classifier(unrotated)], dim=1)  # (B, 3, C)

        scores = embed_inputs(heads, split.inputs, device=device, collate_fn=bundle.collate_fn)  # (N, heads, C)
        hits = (scores.argmax(2) == split.labels[:, None]).sum(0)
        return {name: int(h) / len(split.labels) for name, h in zip(names, hits, strict=True)}

    def backbone_spec(self) -> BackboneSpec:
        return backbone_spec(self.backbone, self.info)

"""Heuristic multi-task pretraining (Qian, 2023, "Heuristic Vision Pre-Training with Self-Supervised and
Supervised Multi-Task Learning").

One ViT trained jointly on three pretext tasks, the paper's hybrid of self-supervised and supervised signals:

- ``mim``: masked image modelling, SimMIM-style: a random share of the first view's patches is replaced by a
  learned mask token before the encoder and a linear head regresses their raw pixels (L1 on the masked
  patches).
- ``contrastive``: NT-Xent between projections of the class tokens of two augmented views (the first one is
  the masked view when ``mim`` is on: masking acts as a further augmentation, and no third encoder pass is
  paid for).
- ``multilabel``: a multi-label classification head (per-class sigmoid, binary cross-entropy summed over the
  classes) on the class token of every encoded view. Fashion-MNIST has one label per image, so its
  multi-hot target has exactly one positive: the task is then ten one-vs-rest binary classifiers, not the
  paper's multi-object labels.

The losses are balanced by :class:`ssl_core.losses.MultiTaskLoss` (default: learned uncertainty weights,
Kendall et al., 2018; ``fixed`` and ``mgda`` selectable). ``tasks=("classify",)`` is the baseline: softmax
cross-entropy of a linear head on the class token of one unmasked view, same backbone, same views, same budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.errors import ConfigError
from ssl_core.eval import embed_inputs
from ssl_core.losses import MultiTaskLoss, masked_l1, nt_xent
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.common import backbone_spec, build_vit_for
from ssl_vision.models.heads import projection_mlp
from ssl_vision.models.vit import ViTConfig, patchify
from ssl_vision.pretext.labeled import LabeledViews
from ssl_vision.transforms.views import View, ViewConfig

TASKS = ("mim", "contrastive", "multilabel", "classify")
WEIGHTINGS = ("uncertainty", "fixed", "mgda")


@dataclass
class MultiTaskConfig:
    """Multi-task settings (``--set method.<name>=<value>``).

    Args:
        backbone: the ViT (ViT-tiny with 7-pixel patches, MAE's).
        tasks: a non-empty subset of ``("mim", "contrastive", "multilabel")``, or ``("classify",)`` alone: the
            plain cross-entropy baseline.
        weighting: how :class:`~ssl_core.losses.MultiTaskLoss` combines the task losses: ``uncertainty``
            (learned per-task log-variances), ``fixed`` (``weights``) or ``mgda`` (min-norm gradient weights
            on the backbone's parameters).
        mim_weight, contrastive_weight, multilabel_weight: the task weights of ``weighting=fixed``.
        grad_normalization: task-gradient normalisation of ``mgda`` (``none``, ``l2``, ``loss``, ``loss+``).
        mask_ratio: share of masked patches of ``mim`` (SimMIM: 0.6).
        temperature: NT-Xent temperature of ``contrastive``.
        proj_hidden_dim, proj_dim: the contrastive projection head's widths.
        view: the augmentation of each view (SimCLR's, with crops of 35-100% of the image).
    """

    backbone: ViTConfig = field(default_factory=lambda: ViTConfig(patch_size=7))
    tasks: tuple[str, ...] = ("mim", "contrastive", "multilabel")
    weighting: str = "uncertainty"
    mim_weight: float = 1.0
    contrastive_weight: float = 1.0
    multilabel_weight: float = 1.0
    grad_normalization: str = "none"
    mask_ratio: float = 0.6
    temperature: float = 0.2
    proj_hidden_dim: int = 512
    proj_dim: int = 128
    view: ViewConfig = field(default_factory=lambda: ViewConfig(crop_scale=[0.35, 1.0]))

    def __post_init__(self) -> None:
        self.tasks = tuple(self.tasks)
        unknown = [t for t in self.tasks if t not in TASKS]
        if not self.tasks or unknown or len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(
                f"method.tasks must be distinct names among {', '.join(TASKS[:3])} (or classify alone), "
                f"got {list(self.tasks)}"
            )
        if "classify" in self.tasks and len(self.tasks) > 1:
            raise ConfigError(
                f"method.tasks=[classify] is the cross-entropy baseline and takes no other task, got {list(self.tasks)}"
            )
        if self.weighting not in WEIGHTINGS:
            raise ConfigError(f"method.weighting must be one of {', '.join(WEIGHTINGS)}, got {self.weighting!r}")
        if not 0 < self.mask_ratio < 1 or self.temperature <= 0:
            raise ConfigError(
                f"method.mask_ratio must lie in (0, 1) and method.temperature be positive, "
                f"got {self.mask_ratio} and {self.temperature}"
            )


class MultiTask(Method):
    """One ViT, several task heads, the task losses balanced by :class:`~ssl_core.losses.MultiTaskLoss`.

    Shapes:
        - batch: ``{"views": V tensors (B, C, H, W), "label": (B,) int64, "mask": (B, L) bool}`` (two views
          with ``contrastive``, one otherwise; the mask with ``mim``)
        - :meth:`task_losses`: the batch -> ``{task: scalar}``
        - :meth:`embed`: ``(B, C, H, W) -> (B, embed_dim)`` (the class token of the unmasked image)
    """

    def __init__(self, config: MultiTaskConfig, info: ImageInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        tasks = config.tasks
        if ("multilabel" in tasks or "classify" in tasks) and not info.num_classes:
            raise ConfigError(
                "the multilabel / classify tasks need labelled data: use data.train_labels=true on data with "
                "classes, or drop them from method.tasks"
            )
        self.num_classes = int(info.num_classes or 0)
        self.backbone = build_vit_for(config.backbone, info)
        d, p = self.backbone.embed_dim, self.backbone.config.patch_size
        if "mim" in tasks:
            self.mask_token = nn.Parameter(torch.zeros(1, 1, d))
            nn.init.normal_(self.mask_token, std=0.02)
            self.pixel_head = nn.Linear(d, p * p * info.channels)
        if "contrastive" in tasks:
            self.projector = projection_mlp(d, config.proj_hidden_dim, config.proj_dim)
        if "multilabel" in tasks or "classify" in tasks:
            self.classifier = nn.Linear(d, self.num_classes)
        if "classify" not in tasks:
            self.weighting = MultiTaskLoss(
                tasks,
                config.weighting,
                {t: getattr(config, f"{t}_weight") for t in tasks} if config.weighting == "fixed" else None,
                config.grad_normalization if config.weighting == "mgda" else "none",
            )

    def pretext(self) -> LabeledViews:
        c = self.config
        view = View(c.view, self.info)
        n_views = 2 if "contrastive" in c.tasks else 1
        num_patches = self.backbone.num_patches if "mim" in c.tasks else None
        return LabeledViews([view] * n_views, num_patches, c.mask_ratio)

    def encode_masked(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """SimMIM's encoder pass: masked patches replaced by the mask token.

        Shapes:
            - images ``(B, C, H, W)``, mask ``(B, L)`` -> ``(B, 1 + L, D)``
        """
        tokens = self.backbone.patch_embed(images)  # (B, L, D)
        w = mask[..., None].to(tokens.dtype)  # 1 on masked patches
        tokens = tokens * (1 - w) + self.mask_token * w
        return self.backbone.encode(tokens + self.backbone.pos_embed)

    def task_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The loss of every configured task on one batch (before weighting)."""
        tasks, views, labels = self.config.tasks, batch["views"], batch["label"]
        if "mim" in tasks:
            first = self.encode_masked(views[0], batch["mask"])
        else:
            first = self.backbone.forward_features(views[0])
        cls = [first[:, 0]]
        losses: dict[str, torch.Tensor] = {}
        if "mim" in tasks:
            target = patchify(views[0], self.backbone.config.patch_size)
            losses["mim"] = masked_l1(self.pixel_head(first[:, 1:]), target, batch["mask"])
        if "contrastive" in tasks:
            cls.append(self.backbone.forward_features(views[1])[:, 0])
            z = self.projector(torch.cat(cls))  # one pass of the projector over both views: (2B, proj_dim)
            z1, z2 = z.chunk(2)
            losses["contrastive"] = nt_xent(z1, z2, self.config.temperature)
        if "multilabel" in tasks:
            logits = self.classifier(torch.cat(cls))  # (V * B, classes)
            target = F.one_hot(labels, self.num_classes).to(logits.dtype).repeat(len(cls), 1)  # one positive each
            losses["multilabel"] = F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / len(logits)
        if "classify" in tasks:
            losses["classify"] = F.cross_entropy(self.classifier(cls[0]), labels)
        return losses

    def forward(self, batch: dict[str, Any]) -> MethodOutput:
        losses = self.task_losses(batch)
        logs: dict[str, float | torch.Tensor] = {f"loss_{k}": v.detach() for k, v in losses.items()}
        if "classify" in self.config.tasks:
            return MethodOutput(losses["classify"], logs)
        total, weights = self.weighting(losses, self.backbone.parameters())
        logs.update({f"w_{k}": v for k, v in weights.items()})
        return MethodOutput(total, logs)

    @torch.no_grad()
    def head_scores(self, bundle: Any, device: torch.device) -> dict[str, float]:
        """Top-1 accuracy on ``bundle.probe_test`` of the classification head on the unmasked image's class
        token: ``multilabel_top1`` (argmax of the multi-label head) or ``ce_top1`` (the baseline's head)."""
        tasks = self.config.tasks
        name = "multilabel_top1" if "multilabel" in tasks else "ce_top1" if "classify" in tasks else None
        split = bundle.probe_test
        if name is None or split is None or not len(split.labels):
            return {}
        logits = embed_inputs(
            lambda x: self.classifier(self.backbone.forward_features(x)[:, 0]),
            split.inputs, device=device, collate_fn=bundle.collate_fn,
        )  # fmt: skip
        return {name: int((logits.argmax(1) == split.labels).sum()) / len(split.labels)}

    def backbone_spec(self) -> BackboneSpec:
        return backbone_spec(self.backbone, self.info)

"""Volume Fusion (Wang et al., 2023, "MIS-FM: 3D Medical Image Segmentation using Foundation Models Pretrained on a
Large-Scale Unannotated Dataset"): a segmentation network learns, without labels, to tell for every voxel of a
fused volume which discrete share ``alpha_k = k / K`` of a foreground patch was blended into the background there.

The pretext (:class:`~ssl_medical.pretext.volume_fusion.FusionPretext`) augments each patch and draws its label
map (a grid of random blocks, 70% of them fused with a random class in ``{1..K}``, PyMIC's ``VolumeFusion``); its
collate fuses each patch of the batch, as foreground, into the previous patch of the batch, as background (our data
set yields one random patch per item, so two patches of one batch play MIS-FM's two random crops; the batch must
hold at least 2 patches). The network is a MONAI ``UNet`` (:class:`~ssl_medical.models.monai_nets.MonaiBackbone`)
with ``K + 1`` output channels; the loss is MIS-FM's (PyMIC's ``loss_type = [DiceLoss, CrossEntropyLoss]``,
``loss_weight = [0.5, 0.5]``): ``0.5 * soft Dice + 0.5 * cross-entropy`` (:func:`fusion_loss`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ssl_core.errors import ConfigError
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_medical.info import VolumeInfo
from ssl_medical.models.monai_nets import patch_unet
from ssl_medical.pretext.volume_fusion import BLOCK_FRACTIONS, NUM_CLASSES, FusionPretext

BACKBONE_NAME = "monai"
"""The modality's backbone registry key of :func:`~ssl_medical.models.monai_nets.build_monai_backbone`."""


def soft_dice_loss(logits: torch.Tensor, label: torch.Tensor, smooth: float = 1e-5) -> torch.Tensor:
    """PyMIC's ``DiceLoss`` on softmax probabilities: per class, ``1 - (2 sum(p y) + s) / (sum(p) + sum(y) + s)``
    with the sums over every voxel of the batch, averaged over the classes.

    Args:
        logits: ``(B, C, D, H, W)`` class scores.
        label: ``(B, D, H, W)`` int64 classes in ``[0, C - 1]``.
        smooth: PyMIC's ``1e-5`` in numerator and denominator.
    """
    prob = logits.softmax(1)
    onehot = F.one_hot(label, logits.shape[1]).movedim(-1, 1).to(prob.dtype)
    dims = (0, *range(2, logits.ndim))
    inter = (prob * onehot).sum(dims)
    dice = (2 * inter + smooth) / (prob.sum(dims) + onehot.sum(dims) + smooth)
    return 1 - dice.mean()


def fusion_loss(
    logits: torch.Tensor, label: torch.Tensor, dice_weight: float = 0.5, ce_weight: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MIS-FM's segmentation loss ``dice_weight * soft Dice + ce_weight * cross-entropy`` (mean over voxels).

    Shapes:
        - logits: ``(B, C, D, H, W)``; label: ``(B, D, H, W)`` int64.
        - output: ``(loss, dice, ce)``, three scalars.
    """
    if logits.shape[0] != label.shape[0] or logits.shape[2:] != label.shape[1:]:
        raise ValueError(f"logits {tuple(logits.shape)} and label {tuple(label.shape)} do not match")
    dice = soft_dice_loss(logits.float(), label)
    ce = F.cross_entropy(logits.float(), label)
    return dice_weight * dice + ce_weight * ce, dice, ce


@dataclass
class VolumeFusionConfig:
    """Volume Fusion settings (``--set method.<name>=<value>``).

    Args:
        channels: UNet feature channels per level (the models helper's small CPU UNet by default).
        strides: UNet down-sampling strides (patch sides must be multiples of their product).
        num_res_units: residual units per UNet block.
        num_classes: ``K + 1`` fusion classes (MIS-FM: 5, ``alpha in {0, 1/4, 1/2, 3/4, 1}``).
        foreground_ratio: share of fused blocks (MIS-FM: 0.7).
        block_fractions: block side range as fractions of the patch side (PyMIC's LUNA setting, about 1/16 to 1/4).
        gamma: gamma augmentation range of each patch (PyMIC: 0.7 to 1.5).
        flip: random flips of each patch.
        invert_prob: probability of inverting a fused volume (PyMIC: 0.25).
        dice_weight, ce_weight: loss weights (MIS-FM: 0.5 and 0.5).
    """

    channels: tuple[int, ...] = (16, 32, 64, 128)
    strides: tuple[int, ...] = (2, 2, 2)
    num_res_units: int = 1
    num_classes: int = NUM_CLASSES
    foreground_ratio: float = 0.7
    block_fractions: tuple[float, float] = BLOCK_FRACTIONS
    gamma: tuple[float, float] = (0.7, 1.5)
    flip: bool = True
    invert_prob: float = 0.25
    dice_weight: float = 0.5
    ce_weight: float = 0.5

    def __post_init__(self) -> None:
        self.channels, self.strides = tuple(self.channels), tuple(self.strides)
        self.block_fractions, self.gamma = tuple(self.block_fractions), tuple(self.gamma)
        if len(self.strides) != len(self.channels) - 1:
            raise ConfigError(
                f"UNet needs one stride fewer than channels, got channels {self.channels}, strides {self.strides}"
            )
        if self.dice_weight < 0 or self.ce_weight < 0 or self.dice_weight + self.ce_weight <= 0:
            raise ConfigError(
                f"dice_weight and ce_weight must be >= 0 and not both 0, got {self.dice_weight}, {self.ce_weight}"
            )
        # validates the pretext's settings
        FusionPretext(
            self.num_classes, self.foreground_ratio, self.block_fractions, self.gamma, self.flip, self.invert_prob
        )


class VolumeFusion(Method):
    """Volume Fusion: a UNet segments the fusion class of every voxel (Dice + cross-entropy).

    Shapes:
        - batch: ``{"image": (B, 1, D, H, W) fused, "label": (B, D, H, W) int64}`` (see :class:`FusionPretext`)
        - :meth:`embed`: ``(B, 1, D, H, W) -> (B, embed_dim)`` (the UNet encoder's pooled maps)
    """

    def __init__(self, config: VolumeFusionConfig, info: VolumeInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        self.backbone = patch_unet(
            info.patch_size, config.num_classes, config.channels, config.strides, config.num_res_units, info.channels
        )

    def pretext(self) -> FusionPretext:
        """Per-sample augmentation and label map; its ``collate`` fuses the batch's patches pairwise."""
        c = self.config
        return FusionPretext(c.num_classes, c.foreground_ratio, c.block_fractions, c.gamma, c.flip, c.invert_prob)

    def forward(self, batch: dict[str, torch.Tensor]) -> MethodOutput:
        """``dice_weight * Dice + ce_weight * cross-entropy`` of the UNet's voxel classes."""
        logits = self.backbone.net(batch["image"])
        label = batch["label"]
        loss, dice, ce = fusion_loss(logits, label, self.config.dice_weight, self.config.ce_weight)
        acc = (logits.detach().argmax(1) == label).float().mean()
        return MethodOutput(loss, {"dice_loss": dice.detach(), "ce": ce.detach(), "voxel_acc": acc})

    def backbone_spec(self) -> BackboneSpec:
        """The UNet's spec: ``monai`` with :meth:`MonaiBackbone.config` (rebuilt by ``build_monai_backbone``)."""
        return BackboneSpec(BACKBONE_NAME, self.backbone.config(), self.backbone.embed_dim, self.info.backbone_input())

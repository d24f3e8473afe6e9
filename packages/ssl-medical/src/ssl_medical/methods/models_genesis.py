"""Models Genesis (Zhou et al., 2019/2021, "Models Genesis: Generic Autodidactic Models for 3D Medical Image
Analysis"): a UNet restores the original patch from a corrupted one.

The pretext (:class:`GenesisPretext`) applies the reference's corruptions (``MrGiovanni/ModelsGenesis``
``pytorch/utils.py``, see :mod:`ssl_medical.pretext.genesis`): random flips of input and target, local pixel
shuffling (0.5), a non-linear Bezier intensity map (0.9), and with probability 0.9 in-painting (0.2) or
out-painting (0.8). The network is a MONAI ``UNet`` (:class:`~ssl_medical.models.monai_nets.MonaiBackbone`) with one
output channel followed by a sigmoid (the reference's ``OutputTransition``), trained with the reference's loss, the
mean squared error to the original patch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ssl_core.errors import ConfigError
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_medical.info import VolumeInfo
from ssl_medical.models.monai_nets import patch_unet
from ssl_medical.pretext.genesis import (
    FLIP_RATE,
    INPAINT_RATE,
    LOCAL_RATE,
    MIN_SIDE,
    NONLINEAR_RATE,
    PAINT_RATE,
    genesis_corrupt,
)

BACKBONE_NAME = "monai"
"""The modality's backbone registry key of :func:`~ssl_medical.models.monai_nets.build_monai_backbone`."""


class GenesisPretext:
    """Models Genesis's per-sample corruption: ``(1, D, H, W)`` patch -> ``{"image": corrupted, "target": original}``
    (the target flipped as the input), drawing from torch's global generator.

    Args:
        flip_rate, local_rate, nonlinear_rate, paint_rate, inpaint_rate: the reference's probabilities (see
            :func:`~ssl_medical.pretext.genesis.genesis_corrupt`).
    """

    def __init__(
        self,
        flip_rate: float = FLIP_RATE,
        local_rate: float = LOCAL_RATE,
        nonlinear_rate: float = NONLINEAR_RATE,
        paint_rate: float = PAINT_RATE,
        inpaint_rate: float = INPAINT_RATE,
    ) -> None:
        for name, p in [
            ("flip_rate", flip_rate),
            ("local_rate", local_rate),
            ("nonlinear_rate", nonlinear_rate),
            ("paint_rate", paint_rate),
            ("inpaint_rate", inpaint_rate),
        ]:
            if not 0 <= p <= 1:
                raise ConfigError(f"{name} must be a probability in [0, 1], got {p}")
        self.rates = (flip_rate, local_rate, nonlinear_rate, paint_rate, inpaint_rate)

    def __call__(self, patch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Corrupt one ``(C, D, H, W)`` patch."""
        corrupted, target = genesis_corrupt(patch.float(), None, *self.rates)
        return {"image": corrupted.contiguous(), "target": target.contiguous()}


@dataclass
class ModelsGenesisConfig:
    """Models Genesis settings (``--set method.<name>=<value>``).

    Args:
        channels: UNet feature channels per level (the models helper's small CPU UNet by default).
        strides: UNet down-sampling strides (patch sides must be multiples of their product).
        num_res_units: residual units per UNet block.
        flip_rate, local_rate, nonlinear_rate, paint_rate, inpaint_rate: corruption probabilities (reference: 0.4,
            0.5, 0.9, 0.9, 0.2).
    """

    channels: tuple[int, ...] = (16, 32, 64, 128)
    strides: tuple[int, ...] = (2, 2, 2)
    num_res_units: int = 1
    flip_rate: float = FLIP_RATE
    local_rate: float = LOCAL_RATE
    nonlinear_rate: float = NONLINEAR_RATE
    paint_rate: float = PAINT_RATE
    inpaint_rate: float = INPAINT_RATE

    def __post_init__(self) -> None:
        self.channels, self.strides = tuple(self.channels), tuple(self.strides)
        if len(self.strides) != len(self.channels) - 1:
            raise ConfigError(
                f"UNet needs one stride fewer than channels, got channels {self.channels}, strides {self.strides}"
            )
        GenesisPretext(self.flip_rate, self.local_rate, self.nonlinear_rate, self.paint_rate, self.inpaint_rate)


class ModelsGenesis(Method):
    """Models Genesis: restore the original patch from its corruption (sigmoid UNet output, MSE).

    Shapes:
        - batch: ``{"image": (B, 1, D, H, W) corrupted, "target": (B, 1, D, H, W)}`` (see :class:`GenesisPretext`)
        - :meth:`embed`: ``(B, 1, D, H, W) -> (B, embed_dim)`` (the UNet encoder's pooled maps)
    """

    def __init__(self, config: ModelsGenesisConfig, info: VolumeInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        if min(info.patch_size) < MIN_SIDE:
            raise ConfigError(
                f"patch size {tuple(info.patch_size)} must be >= {MIN_SIDE} on every side (the painting boxes): "
                "raise data.patch_size"
            )
        self.backbone = patch_unet(
            info.patch_size, info.channels, config.channels, config.strides, config.num_res_units, info.channels
        )

    def pretext(self) -> GenesisPretext:
        """The reference's corruptions, per sample."""
        c = self.config
        return GenesisPretext(c.flip_rate, c.local_rate, c.nonlinear_rate, c.paint_rate, c.inpaint_rate)

    def restore(self, corrupted: torch.Tensor) -> torch.Tensor:
        """The restored patch, ``sigmoid(UNet(corrupted))``: ``(B, C, D, H, W) -> (B, C, D, H, W)`` in ``(0, 1)``."""
        return torch.sigmoid(self.backbone.net(corrupted))

    def forward(self, batch: dict[str, torch.Tensor]) -> MethodOutput:
        """Mean squared error between the restored and the original patch."""
        pred = self.restore(batch["image"])
        loss = F.mse_loss(pred.float(), batch["target"].float())
        return MethodOutput(loss, {"input_mse": F.mse_loss(batch["image"], batch["target"]).detach()})

    def backbone_spec(self) -> BackboneSpec:
        """The UNet's spec: ``monai`` with :meth:`MonaiBackbone.config` (rebuilt by ``build_monai_backbone``)."""
        return BackboneSpec(BACKBONE_NAME, self.backbone.config(), self.backbone.embed_dim, self.info.backbone_input())

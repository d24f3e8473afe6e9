"""BYOL-A (Niizumi et al., 2021, "BYOL for Audio: Self-Supervised Learning for General-Purpose Audio
Representation").

BYOL (Grill et al., 2020) on log-mel spectrograms of single clips: two views of each clip come from the
same input by BYOL-A's audio augmentations -- mixup with another clip in the linear-power domain
(``log((1 - lambda) exp(x) + lambda exp(x_other))``, ``lambda ~ U(0, 0.4)``, the other clip from the batch
instead of the paper's memory of past clips) followed by a random resize crop (a virtual canvas 1.0 x 1.5
the spectrogram's size, box scales in (0.6, 1.5), bicubic resize back) -- each view standardised again per
clip (the paper's post-normalisation). An online network (the CNN encoder, a projector, a predictor)
predicts the EMA target network's projection of the other view; the loss is ``2 - 2 cos(p, z')`` summed over
both orderings, and the target moves after each step with the trainer's ``ema_momentum`` schedule.

The augmentations run in ``forward`` on the batch (one log-mel for the batch), drawing from torch's global
generator; the pretext hands the waveform on unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from ssl_audio.frontend import standardize
from ssl_audio.info import AudioInfo
from ssl_audio.methods.common import projection_mlp, waveform_item
from ssl_audio.models.spectrogram import BYOLACNN, BYOLACNNConfig, spec_backbone_spec
from ssl_audio.transforms.spec import LogMixupExp, RandomResizeCrop
from ssl_core.losses import negative_cosine
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_core.teacher import EMATeacher


@dataclass
class AugmentConfig:
    """BYOL-A's augmentations of a view.

    Args:
        mixup_ratio: largest share of the other clip in log-mixup-exp (0.4; 0 turns mixup off).
        canvas_scale: random resize crop's virtual canvas (frequency, time) relative to the input (1.0, 1.5).
        freq_scale: range of the crop's height relative to the input (0.6, 1.5).
        time_scale: range of the crop's width relative to the input (0.6, 1.5).
    """

    mixup_ratio: float = 0.4
    canvas_scale: tuple[float, float] = (1.0, 1.5)
    freq_scale: tuple[float, float] = (0.6, 1.5)
    time_scale: tuple[float, float] = (0.6, 1.5)


class BYOLAAugment(nn.Module):
    """Mixup, then random resize crop, then per-clip standardisation, on a batch of log-mels ``(B, M, T)``."""

    def __init__(self, config: AugmentConfig) -> None:
        super().__init__()
        self.mixup = LogMixupExp(config.mixup_ratio)
        self.rrc = RandomResizeCrop(config.canvas_scale, config.freq_scale, config.time_scale)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return standardize(self.rrc(self.mixup(spec)))


@dataclass
class BYOLAConfig:
    """BYOL-A settings (``--set method.<name>=<value>``).

    Args:
        backbone: BYOL-A's CNN (32 channels, 256-d).
        proj_hidden_dim: hidden width of projector and predictor (4096 in the paper).
        proj_dim: their output size (256).
        augment: mixup and random resize crop.
    """

    backbone: BYOLACNNConfig = field(default_factory=BYOLACNNConfig)
    proj_hidden_dim: int = 1024
    proj_dim: int = 256
    augment: AugmentConfig = field(default_factory=AugmentConfig)


class BYOLA(Method):
    """BYOL-A: two augmented log-mel views, online CNN + projector + predictor, EMA target, ``2 - 2 cos``.

    Shapes:
        - batch: ``(B, T)`` waveforms
        - :meth:`embed`: ``(B, T) -> (B, embed_dim)``
    """

    def __init__(self, config: BYOLAConfig, info: AudioInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        c = config
        self.backbone = BYOLACNN(c.backbone)
        self.projector = projection_mlp(self.backbone.embed_dim, c.proj_hidden_dim, c.proj_dim)
        self.predictor = projection_mlp(c.proj_dim, c.proj_hidden_dim, c.proj_dim)
        self.target = EMATeacher({"backbone": self.backbone, "projector": self.projector})
        self.augment = BYOLAAugment(c.augment)

    def pretext(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return waveform_item

    def forward(self, batch: torch.Tensor) -> MethodOutput:
        with torch.no_grad():
            spec = self.backbone.spectrogram(batch)
            x = torch.cat([self.augment(spec), self.augment(spec)])  # both views in one pass: (2B, M, T)
        p1, p2 = self.predictor(self.projector(self.backbone.forward_spec(x))).chunk(2)
        with torch.no_grad():
            t = self.target.module
            z1, z2 = t["projector"](t["backbone"].forward_spec(x)).chunk(2)
        loss = (2 + 2 * negative_cosine(p1, z2)) + (2 + 2 * negative_cosine(p2, z1))
        return MethodOutput(loss, {})

    def after_optimizer_step(self, step: int, values: Mapping[str, float]) -> None:
        self.target.update({"backbone": self.backbone, "projector": self.projector}, values["ema_momentum"])

    def backbone_spec(self) -> BackboneSpec:
        return spec_backbone_spec(self.backbone, self.info.num_samples)

"""Spectrogram augmentations, batched: frame crop, SpecAugment masks, BYOL-A's log-mixup-exp and random
resize crop.

Shapes: every op takes log-mel spectrograms ``(B, n_mels, frames)`` and per-sample parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssl_audio.transforms.wave import RandomCrop, crop


def frame_crop(spec: torch.Tensor, starts: torch.Tensor, frames: int) -> torch.Tensor:
    """Crop ``frames`` frames of each spectrogram from ``starts[b]`` (:func:`~ssl_audio.transforms.wave.crop`
    on the last axis).

    Shapes:
        - spec: ``(B, n_mels, T)``; starts: ``(B,)``; output: ``(B, n_mels, frames)``
    """
    return crop(spec, starts, frames)


class RandomFrameCrop(RandomCrop):
    """Random crop of ``length`` frames of a spectrogram, a uniform start per sample (as :class:`RandomCrop`)."""


def axis_mask(
    spec: torch.Tensor, starts: torch.Tensor, widths: torch.Tensor, axis: int, value: float = 0.0
) -> torch.Tensor:
    """Set ``[starts[b], starts[b] + widths[b])`` along ``axis`` of sample ``b`` to ``value`` (SpecAugment,
    Park et al., 2019: a frequency mask on axis 1, a time mask on axis 2), for the whole batch at once.

    Several masks per sample: pass ``starts`` and ``widths`` of shape ``(B, M)``.

    Shapes:
        - spec: ``(B, n_mels, frames)``; starts, widths: ``(B,)`` or ``(B, M)``; output: as ``spec``
    """
    if axis not in (1, 2):
        raise ValueError(f"axis must be 1 (frequency) or 2 (time), got {axis}")
    size = spec.shape[axis]
    starts, widths = starts.to(spec.device), widths.to(spec.device)
    if starts.ndim == 1:
        starts, widths = starts[:, None], widths[:, None]
    pos = torch.arange(size, device=spec.device)
    hit = ((pos >= starts[..., None]) & (pos < (starts + widths)[..., None])).any(1)  # (B, size)
    hit = hit[:, :, None] if axis == 1 else hit[:, None, :]
    return spec.masked_fill(hit, value)


class _AxisMask(nn.Module):
    axis = 1

    def __init__(
        self, max_width: int, num_masks: int = 1, value: float = 0.0, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.max_width, self.num_masks, self.value, self.generator = max_width, num_masks, value, generator

    def draw(self, batch: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample widths uniform in ``{0, ..., max_width}`` and starts uniform in ``{0, ..., size - width}``."""
        g, shape = self.generator, (batch, self.num_masks)
        widths = torch.randint(0, min(self.max_width, size) + 1, shape, generator=g)
        starts = (torch.rand(shape, generator=g) * (size - widths + 1)).long()
        return starts, widths

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        starts, widths = self.draw(spec.shape[0], spec.shape[self.axis])
        return axis_mask(spec, starts, widths, self.axis, self.value)


class FrequencyMask(_AxisMask):
    """SpecAugment frequency masking with an independent mask per sample (as
    ``torchaudio.transforms.FrequencyMasking(iid_masks=True)``, for 3-D batches): ``num_masks`` bands of
    widths uniform in ``{0, ..., max_width}`` set to ``value`` (0: the mean of a standardised log-mel).

    Args:
        max_width: ``F`` of the paper.
        num_masks: masks per sample.
        value: fill value.
        generator: source of randomness.
    """

    axis = 1


class TimeMask(_AxisMask):
    """SpecAugment time masking with an independent mask per sample: as :class:`FrequencyMask` over frames
    (``T`` of the paper is ``max_width``)."""

    axis = 2


def log_mixup_exp(x: torch.Tensor, other: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    r"""BYOL-A's mixup of log-mel spectrograms (Niizumi et al., 2021, Sec. 3.2, eq. 2): mix in the linear
    (exp) domain and return to the log domain,

    .. math:: \tilde x = \log\big((1 - \lambda) e^{x} + \lambda e^{x_{\mathrm{other}}}\big)

    with the clip itself weighted ``1 - lambda``, ``lambda ~ U(0, 0.4)`` (the reference code's
    ``log_mixup_exp(x, z, 1 - lambda)``): the other clip is background. Computed as a ``logaddexp``, which
    does not overflow.

    Shapes:
        - x, other: ``(B, n_mels, frames)``; lam: ``(B,)`` in ``[0, 1)``; output: ``(B, n_mels, frames)``
    """
    lam = lam.to(x)[:, None, None]
    return torch.logaddexp(x + torch.log1p(-lam), other + torch.log(lam.clamp_min(1e-12)))


class LogMixupExp(nn.Module):
    """BYOL-A's mixup with a random other clip of the batch (the paper draws from a memory of past inputs;
    the other clips of the batch are such a random set), ``lambda ~ U(0, ratio)`` per sample.

    Args:
        ratio: the largest share of the other clip (0.4 in BYOL-A).
        generator: source of randomness.
    """

    def __init__(self, ratio: float = 0.4, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.ratio, self.generator = ratio, generator

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        b = spec.shape[0]
        if b < 2 or self.ratio <= 0:
            return spec
        g = self.generator
        partner = (torch.arange(b) + torch.randint(1, b, (b,), generator=g)) % b  # never the clip itself
        lam = self.ratio * torch.rand(b, generator=g)
        return log_mixup_exp(spec, spec[partner.to(spec.device)], lam)


def resize_crop(
    spec: torch.Tensor, boxes: torch.Tensor, canvas_scale: tuple[float, float] = (1.0, 1.5)
) -> torch.Tensor:
    """BYOL-A's random resize crop with given boxes (Niizumi et al., 2021, Sec. 3.3): each spectrogram is
    centred on a zero canvas ``canvas_scale`` times its size (frequency, time), the box ``(i, j, h, w)``
    (top row, left frame, height, width on the canvas) is cut out, and the cut is resized back to the
    spectrogram's size by bicubic interpolation (``align_corners=True``, as the reference code).

    Shapes:
        - spec: ``(B, n_mels, frames)``; boxes: ``(B, 4)`` long; output: ``(B, n_mels, frames)``
    """
    b, f, t = spec.shape
    ch, cw = int(f * canvas_scale[0]), int(t * canvas_scale[1])
    canvas = spec.new_zeros(b, ch, cw)
    top, left = (ch - f) // 2, (cw - t) // 2
    canvas[:, top : top + f, left : left + t] = spec
    out = []
    for k, (i, j, h, w) in enumerate(boxes.tolist()):
        cut = canvas[k : k + 1, None, i : i + h, j : j + w]
        out.append(F.interpolate(cut, size=(f, t), mode="bicubic", align_corners=True)[:, 0])
    return torch.cat(out)


class RandomResizeCrop(nn.Module):
    """BYOL-A's random resize crop: boxes with height ``n_mels * u_f`` and width ``frames * u_t`` (``u``
    uniform in ``freq_scale`` / ``time_scale``, clipped to the canvas), placed uniformly on the canvas, then
    :func:`resize_crop`.

    Args:
        canvas_scale: virtual canvas size relative to the input, (frequency, time) (BYOL-A: (1.0, 1.5)).
        freq_scale: range of the box height relative to the input (0.6, 1.5).
        time_scale: range of the box width relative to the input (0.6, 1.5).
        generator: source of randomness.
    """

    def __init__(
        self,
        canvas_scale: tuple[float, float] = (1.0, 1.5),
        freq_scale: tuple[float, float] = (0.6, 1.5),
        time_scale: tuple[float, float] = (0.6, 1.5),
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.canvas_scale, self.freq_scale, self.time_scale = tuple(canvas_scale), tuple(freq_scale), tuple(time_scale)
        self.generator = generator

    def draw(self, batch: int, f: int, t: int) -> torch.Tensor:
        """Boxes ``(B, 4)``: ``(i, j, h, w)`` on the canvas."""
        g = self.generator
        ch, cw = int(f * self.canvas_scale[0]), int(t * self.canvas_scale[1])
        u = torch.rand(batch, 4, generator=g)
        fs, ts = self.freq_scale, self.time_scale
        h = ((fs[0] + (fs[1] - fs[0]) * u[:, 0]) * f).long().clamp(1, ch)
        w = ((ts[0] + (ts[1] - ts[0]) * u[:, 1]) * t).long().clamp(1, cw)
        i = (u[:, 2] * (ch - h + 1)).long()
        j = (u[:, 3] * (cw - w + 1)).long()
        return torch.stack([i, j, h, w], dim=1)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        boxes = self.draw(*spec.shape)
        return resize_crop(spec, boxes, self.canvas_scale)

"""Waveform augmentations, batched: crop, gain, noise at a signal-to-noise ratio, mixing with other clips.

Shapes: every op takes ``(B, T)`` waveforms and per-sample parameters ``(B,)``.
"""

from __future__ import annotations

import torch
from torch import nn


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None, device) -> torch.Tensor:
    return (low + (high - low) * torch.rand(n, generator=generator)).to(device)


def crop(x: torch.Tensor, starts: torch.Tensor, length: int) -> torch.Tensor:
    """Cut ``length`` steps from the last axis of each sample, sample ``b`` from ``starts[b]``.

    Works on waveforms ``(B, T)`` and on spectrograms ``(B, n_mels, frames)`` (a crop of frames), with one
    gather for the whole batch.

    Shapes:
        - x: ``(B, ..., T)``; starts: ``(B,)`` long with ``0 <= starts <= T - length``
        - output: ``(B, ..., length)``
    """
    if length > x.shape[-1]:
        raise ValueError(f"crop length {length} exceeds the input's {x.shape[-1]} steps")
    idx = starts.to(x.device).long()[:, None] + torch.arange(length, device=x.device)  # (B, length)
    idx = idx.view(idx.shape[0], *([1] * (x.ndim - 2)), length).expand(*x.shape[:-1], length)
    return x.gather(-1, idx)


class RandomCrop(nn.Module):
    """Random crop of ``length`` steps of the last axis (waveform samples or spectrogram frames), a uniform
    start per sample.

    Args:
        length: steps kept.
        generator: source of randomness (``None``: torch's global generator).
    """

    def __init__(self, length: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.length, self.generator = length, generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        high = x.shape[-1] - self.length + 1
        starts = torch.randint(0, max(high, 1), (x.shape[0],), generator=self.generator)
        return crop(x, starts, self.length)


def gain(wave: torch.Tensor, gain_db: torch.Tensor) -> torch.Tensor:
    """Scale each clip by ``gain_db[b]`` decibels of amplitude: ``x * 10^(g / 20)``.

    Shapes:
        - wave: ``(B, T)``; gain_db: ``(B,)``; output: ``(B, T)``
    """
    return wave * (10.0 ** (gain_db.to(wave) / 20.0))[:, None]


class RandomGain(nn.Module):
    """Random gain, uniform in ``[min_db, max_db]`` decibels per clip.

    Args:
        min_db, max_db: the range (default -6 to +6 dB).
        generator: source of randomness.
    """

    def __init__(self, min_db: float = -6.0, max_db: float = 6.0, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.min_db, self.max_db, self.generator = min_db, max_db, generator

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return gain(wave, _uniform(len(wave), self.min_db, self.max_db, self.generator, wave.device))


def add_at_snr(wave: torch.Tensor, noise: torch.Tensor, snr_db: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    r"""Add ``noise`` to ``wave`` scaled so that each sum has signal-to-noise ratio ``snr_db[b]`` decibels.

    .. math:: y = x + n \sqrt{P_x / (P_n 10^{\mathrm{snr}/10})},\quad P = \mathrm{mean}(x^2)

    A silent noise (``P_n = 0``) adds nothing.

    Shapes:
        - wave, noise: ``(B, T)``; snr_db: ``(B,)``; output: ``(B, T)``
    """
    p_sig = wave.pow(2).mean(-1)
    p_noise = noise.pow(2).mean(-1)
    scale = torch.sqrt(p_sig / (p_noise.clamp_min(eps) * 10.0 ** (snr_db.to(wave) / 10.0)))
    return wave + scale[:, None] * noise


class GaussianNoise(nn.Module):
    """White Gaussian noise at an SNR uniform in ``[min_snr_db, max_snr_db]`` per clip.

    Args:
        min_snr_db, max_snr_db: the range (default 5 to 40 dB).
        generator: source of randomness.
    """

    def __init__(
        self, min_snr_db: float = 5.0, max_snr_db: float = 40.0, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.min_snr_db, self.max_snr_db, self.generator = min_snr_db, max_snr_db, generator

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(wave.shape, generator=self.generator).to(wave)
        snr = _uniform(len(wave), self.min_snr_db, self.max_snr_db, self.generator, wave.device)
        return add_at_snr(wave, noise, snr)


class BatchMix(nn.Module):
    """Mix each clip with another clip of the batch (a random derangement-free permutation: the batch rolled
    by a random shift) at an SNR uniform in ``[min_snr_db, max_snr_db]``: background from the batch itself.

    Args:
        min_snr_db, max_snr_db: the range (default 5 to 20 dB: the clip stays dominant).
        generator: source of randomness.
    """

    def __init__(
        self, min_snr_db: float = 5.0, max_snr_db: float = 20.0, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.min_snr_db, self.max_snr_db, self.generator = min_snr_db, max_snr_db, generator

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        b = len(wave)
        if b < 2:
            return wave
        shift = int(torch.randint(1, b, (), generator=self.generator))
        snr = _uniform(b, self.min_snr_db, self.max_snr_db, self.generator, wave.device)
        return add_at_snr(wave, wave.roll(shift, 0), snr)

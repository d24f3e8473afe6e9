"""Front ends on torchaudio: log-mel spectrograms, MFCCs with deltas, and the per-band statistics that the
probes use as baselines ("raw log-mel statistics", "MFCC statistics").

Every function takes a batch of waveforms ``(B, T)`` (or one waveform ``(T,)``) and runs on its device, so a
method computes its spectrograms on the batch, on the GPU when there is one, instead of per clip in the
data loader.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio
from torch import nn

from ssl_core.errors import ConfigError


@dataclass
class LogMelConfig:
    """Log-mel settings (``--set method.frontend.<name>=<value>``).

    Args:
        n_mels: mel bands (64, as BYOL-A and ATST; Audio-MAE uses 128).
        win_ms: analysis window in milliseconds (25, a 400-point FFT at 16 kHz).
        hop_ms: hop in milliseconds (10: 100 frames per second).
        f_min: lowest band edge in Hz.
        f_max: highest band edge in Hz (``None``: half the sample rate).
        eps: added before the logarithm.
        normalize: ``"clip"`` standardises each clip's spectrogram to zero mean and unit variance (over all
            bands and frames); ``"none"`` leaves the log energies.
    """

    n_mels: int = 64
    win_ms: float = 25.0
    hop_ms: float = 10.0
    f_min: float = 60.0
    f_max: float | None = 7800.0
    eps: float = 1e-6
    normalize: str = "clip"

    def __post_init__(self) -> None:
        if self.n_mels < 1 or self.win_ms <= 0 or self.hop_ms <= 0:
            raise ConfigError(
                f"log-mel needs positive n_mels, win_ms and hop_ms, got {self.n_mels}, {self.win_ms}, {self.hop_ms}"
            )
        if self.normalize not in ("clip", "none"):
            raise ConfigError(f"frontend.normalize must be 'clip' or 'none', got {self.normalize!r}")


class LogMel(nn.Module):
    """Waveforms to log-mel spectrograms: ``torchaudio.transforms.MelSpectrogram`` (power 2, Hann window,
    centred frames, HTK mel scale) followed by ``log(mel + eps)`` and the configured normalisation.

    Shapes:
        - input: ``(B, T)`` or ``(T,)`` waveforms
        - output: ``(B, n_mels, frames)`` (or ``(n_mels, frames)``), ``frames = T // hop + 1``
    """

    def __init__(self, config: LogMelConfig | None = None, sample_rate: int = 16_000) -> None:
        super().__init__()
        self.config = c = config or LogMelConfig()
        self.sample_rate = sample_rate
        self.win_length = round(sample_rate * c.win_ms / 1000)
        self.hop_length = round(sample_rate * c.hop_ms / 1000)
        f_max = min(c.f_max or sample_rate / 2, sample_rate / 2)
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=self.win_length,
            win_length=self.win_length,
            hop_length=self.hop_length,
            f_min=c.f_min,
            f_max=f_max,
            n_mels=c.n_mels,
            power=2.0,
        )
        # torch.hann_window(n) is a view of n + 1 values, which safetensors refuses to checkpoint: own a copy
        self.mel.spectrogram.window = self.mel.spectrogram.window.clone()

    def num_frames(self, num_samples: int) -> int:
        """Frames of a clip of ``num_samples`` samples."""
        return num_samples // self.hop_length + 1

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = torch.log(self.mel(wave.float()) + self.config.eps)
        return standardize(x) if self.config.normalize == "clip" else x


def standardize(spec: torch.Tensor) -> torch.Tensor:
    """Zero mean and unit variance per clip over bands and frames (``LogMel``'s ``normalize="clip"``; BYOL-A and
    ATST standardise their augmented views again with it).

    Shapes:
        - spec: ``(..., n_mels, frames)``, the same out
    """
    dims = (-2, -1)
    return (spec - spec.mean(dims, keepdim=True)) / (spec.std(dims, keepdim=True) + 1e-5)


def mfcc(wave: torch.Tensor, sample_rate: int = 16_000, n_mfcc: int = 13, deltas: bool = True) -> torch.Tensor:
    """MFCCs with first and second deltas: the 39-dimensional features whose k-means clusters are HuBERT's
    first-iteration targets (Hsu et al., 2021, Sec. IV-B).

    25 ms windows every 10 ms, 23 mel bands up to 8 kHz (at 16 kHz), ``torchaudio.transforms.MFCC``, deltas by
    ``torchaudio.functional.compute_deltas``.

    Shapes:
        - wave: ``(B, T)`` or ``(T,)``
        - output: ``(B, frames, 3 * n_mfcc)`` (``n_mfcc`` without deltas), frames as :class:`LogMel`'s
    """
    win = round(sample_rate * 0.025)
    transform = torchaudio.transforms.MFCC(
        sample_rate=sample_rate,
        n_mfcc=n_mfcc,
        melkwargs={"n_fft": win, "win_length": win, "hop_length": round(sample_rate * 0.01), "n_mels": 23},
    ).to(wave.device)
    feats = transform(wave.float())  # (..., n_mfcc, frames)
    if deltas:
        d1 = torchaudio.functional.compute_deltas(feats)
        feats = torch.cat([feats, d1, torchaudio.functional.compute_deltas(d1)], dim=-2)
    return feats.transpose(-1, -2)


def band_statistics(features: torch.Tensor) -> torch.Tensor:
    """Per-band mean and standard deviation over time, concatenated: a clip's summary that ignores order.

    Shapes:
        - features: ``(B, bands, frames)``
        - output: ``(B, 2 * bands)``
    """
    return torch.cat([features.mean(-1), features.std(-1)], dim=-1)


def logmel_statistics(wave: torch.Tensor, sample_rate: int = 16_000, n_mels: int = 64) -> torch.Tensor:
    """The "raw log-mel statistics" baseline: per-band mean and standard deviation of the un-normalised
    log-mel spectrogram (:class:`LogMel` with ``normalize="none"``).

    Shapes:
        - wave: ``(B, T)``
        - output: ``(B, 2 * n_mels)``
    """
    logmel = LogMel(LogMelConfig(n_mels=n_mels, normalize="none"), sample_rate).to(wave.device)
    return band_statistics(logmel(wave))


def mfcc_statistics(wave: torch.Tensor, sample_rate: int = 16_000) -> torch.Tensor:
    """The "MFCC statistics" baseline: per-coefficient mean and standard deviation of :func:`mfcc` (39
    coefficients with deltas, so 78 features).

    Shapes:
        - wave: ``(B, T)``
        - output: ``(B, 78)``
    """
    return band_statistics(mfcc(wave, sample_rate).transpose(-1, -2))

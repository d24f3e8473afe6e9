"""Audio augmentations on batches of waveforms ``(B, T)`` or log-mel spectrograms ``(B, n_mels, frames)``.

Every augmentation is a functional op (its random parameters given explicitly, so tests can check it
against a naive reference) and a random ``nn.Module`` that draws the parameters per sample from a
``torch.Generator`` (or torch's global generator) and calls the op on the whole batch.

- :mod:`~ssl_audio.transforms.wave`: random crop, random gain in dB, Gaussian noise at a random SNR,
  mixing with another clip of the batch at a random SNR.
- :mod:`~ssl_audio.transforms.spec`: random crop of frames, SpecAugment time / frequency masks (per-sample,
  batched), BYOL-A's log-mixup-exp, BYOL-A's random resize crop.
"""

from ssl_audio.transforms.spec import (
    FrequencyMask,
    LogMixupExp,
    RandomFrameCrop,
    RandomResizeCrop,
    TimeMask,
    axis_mask,
    frame_crop,
    log_mixup_exp,
    resize_crop,
)
from ssl_audio.transforms.wave import (
    BatchMix,
    GaussianNoise,
    RandomCrop,
    RandomGain,
    add_at_snr,
    crop,
    gain,
)

__all__ = [
    "BatchMix",
    "FrequencyMask",
    "GaussianNoise",
    "LogMixupExp",
    "RandomCrop",
    "RandomFrameCrop",
    "RandomGain",
    "RandomResizeCrop",
    "TimeMask",
    "add_at_snr",
    "axis_mask",
    "crop",
    "frame_crop",
    "gain",
    "log_mixup_exp",
    "resize_crop",
]

"""Reading audio files and fitting clips to a fixed length.

Every clip of the data sets is mono ``float32`` at the configured sample rate: files are read with soundfile
(any PCM width, float, FLAC, Ogg Vorbis, ...; integers are scaled to [-1, 1]), their channels averaged, and
resampled with ``torchaudio.functional.resample``.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import torch
import torchaudio

from ssl_core.data import check_finite
from ssl_core.errors import DataError
from ssl_core.io import atomic_write

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".mp3")


class UnreadableAudio(Exception):
    """A file that is not readable audio (corrupt, not audio at all, or without samples); folder loaders skip
    and count these."""


def decode(source: str | Path | bytes, name: str, sample_rate: int, max_seconds: float | None = None) -> torch.Tensor:
    """Decode one file (a path, or the file's bytes) to a mono waveform at ``sample_rate``.

    Raises:
        UnreadableAudio: the file cannot be decoded or holds no samples.
        DataError: the samples hold NaN or infinity (:func:`ssl_core.data.check_finite`, naming ``name``).

    Shapes:
        - output: ``(T,)`` float32
    """
    try:
        with sf.SoundFile(io.BytesIO(source) if isinstance(source, bytes) else str(source)) as f:
            frames = -1 if max_seconds is None else int(max_seconds * f.samplerate)
            data = f.read(frames=frames, dtype="float32", always_2d=True)  # (T, channels)
            sr = f.samplerate
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise UnreadableAudio(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__) from None
    if data.shape[0] == 0:
        raise UnreadableAudio("no samples")
    check_finite(data, name)
    wave = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))
    return resample(wave, sr, sample_rate)


@functools.lru_cache(maxsize=16)
def _resampler(orig: int, new: int) -> torchaudio.transforms.Resample:
    return torchaudio.transforms.Resample(orig, new)


def resample(wave: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """``torchaudio.functional.resample`` (windowed sinc) with its kernel built once per pair of rates: a
    folder of 44.1 kHz files resamples four times faster than with a fresh kernel per file.

    Shapes:
        - wave: ``(..., T)``; output: ``(..., ceil(T * new / orig))``
    """
    if orig == new:
        return wave
    with torch.no_grad():
        return _resampler(orig, new)(wave)


def read_audio(path: str | Path, sample_rate: int = 16_000) -> torch.Tensor:
    """Read an audio file as a mono ``float32`` waveform at ``sample_rate``: channels averaged, resampled with
    ``torchaudio.functional.resample``, integer PCM (16, 24, 32 bit) scaled to [-1, 1].

    Raises:
        DataError: the file is missing, not readable audio, empty, or holds NaN / infinite samples.

    Shapes:
        - output: ``(T,)``
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"audio file not found: {path}")
    try:
        return decode(path, str(path), sample_rate)
    except UnreadableAudio as e:
        raise DataError(f"{path} is not readable audio ({e})") from None


def fit_center(wave: torch.Tensor, num_samples: int) -> tuple[torch.Tensor, int]:
    """Centre ``wave`` in ``num_samples`` samples: a longer wave keeps its middle ``num_samples``, a shorter one
    is zero-padded equally on both sides (the extra sample on the right).

    Returns:
        ``(clip, shift)``: the clip and where sample 0 of ``wave`` lands in it (negative when cropped).

    Shapes:
        - wave: ``(T,)``; clip: ``(num_samples,)``
    """
    n = len(wave)
    if n >= num_samples:
        start = (n - num_samples) // 2
        return wave[start : start + num_samples].clone(), -start
    left = (num_samples - n) // 2
    return torch.nn.functional.pad(wave, (left, num_samples - n - left)), left


def fit_at(wave: torch.Tensor, num_samples: int, offset: int) -> torch.Tensor:
    """``num_samples`` samples of ``wave`` from ``offset`` (a crop when ``offset >= 0``), or ``wave`` placed at
    ``-offset`` in zeros (when ``offset < 0``); zero-padded on the right where the wave ends.

    Shapes:
        - wave: ``(T,)``; output: ``(num_samples,)``
    """
    out = torch.zeros(num_samples, dtype=wave.dtype)
    if offset >= 0:
        seg = wave[offset : offset + num_samples]
        out[: len(seg)] = seg
    else:
        seg = wave[: num_samples + offset]
        out[-offset : -offset + len(seg)] = seg
    return out


def random_crop(wave: torch.Tensor, num_samples: int, generator: torch.Generator) -> torch.Tensor:
    """A uniformly placed ``num_samples`` window: a random crop of a longer wave, or a shorter wave at a random
    place in zeros (the pretraining crops of recordings of any length).

    Shapes:
        - wave: ``(T,)``; output: ``(num_samples,)``
    """
    slack = abs(len(wave) - num_samples)
    shift = int(torch.randint(slack + 1, (1,), generator=generator))
    return fit_at(wave, num_samples, shift if len(wave) >= num_samples else -shift)


def speech_extent(wave: torch.Tensor, threshold: float = 0.02) -> tuple[int, int]:
    """``[start, end)`` of the samples whose magnitude reaches ``threshold`` times the peak: where the sound is,
    trimming leading and trailing silence. ``(0, 0)`` for an all-zero wave."""
    peak = float(wave.abs().max()) if len(wave) else 0.0
    if peak == 0.0:
        return 0, 0
    loud = (wave.abs() >= threshold * peak).nonzero().squeeze(1)
    return int(loud[0]), int(loud[-1]) + 1


def write_cache(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write a cache file atomically (:func:`ssl_core.io.atomic_write`, without fsync: a lost cache is made
    again): ``write(file)`` fills a temporary beside ``path`` that is renamed to ``path`` when it succeeds;
    ``path``'s folder is created when missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, fsync=False) as tmp, open(tmp, "wb") as f:
        write(f)

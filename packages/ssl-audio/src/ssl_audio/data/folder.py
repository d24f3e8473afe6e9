"""User audio folders (``--data PATH``) and recordings to pretrain on (KLettres, Tux Paint).

A folder's audio files (:data:`~ssl_audio.data.audio.AUDIO_EXTENSIONS`, found recursively; hidden files and
other extensions are ignored) are read with :func:`~ssl_audio.data.audio.decode`: mono (the mean of the
channels), resampled to the sample rate, and centred in the clip length (the middle of a longer file, a
shorter one zero-padded on both sides; :func:`~ssl_audio.data.audio.fit_center`). The label of a file is the
name of the sub-folder of ``PATH`` it lies in; files directly in ``PATH`` are unlabelled (pretraining only), so
a flat folder has no probes.

Bad input: files that cannot be decoded (corrupt, not audio) or hold no samples are skipped and counted, with
one summary line; a file holding NaN or infinite samples is refused (:class:`DataError` naming it, from
:func:`ssl_core.data.check_finite`), since silently dropping it would hide a broken export upstream.
"""

from __future__ import annotations

import hashlib
import io
import sys
from pathlib import Path

import numpy as np
import torch

from ssl_audio.data.audio import (
    AUDIO_EXTENSIONS,
    UnreadableAudio,
    decode,
    fit_center,
    random_crop,
    speech_extent,
    write_cache,
)
from ssl_core.errors import DataError


def audio_files(root: Path) -> list[Path]:
    """The audio files under ``root``, sorted, hidden ones left out."""
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in AUDIO_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def read_files(files: list[Path], root: Path, sample_rate: int) -> tuple[list[torch.Tensor], list[Path]]:
    """Decode ``files``; the unreadable and empty ones are skipped, and reported on one line."""
    waves, kept, skipped = [], [], []
    for p in files:
        try:
            waves.append(decode(p, str(p), sample_rate))
            kept.append(p)
        except UnreadableAudio as e:
            skipped.append(f"{p.relative_to(root)} ({e})")
    if skipped:
        print(
            f"note: skipped {len(skipped)} file{'s' if len(skipped) > 1 else ''} that "
            f"{'are' if len(skipped) > 1 else 'is'} not readable audio: {', '.join(skipped)}",
            file=sys.stderr,
        )
    return waves, kept


def load_folder(root: Path, sample_rate: int, num_samples: int) -> tuple[torch.Tensor, torch.Tensor | None, list[str]]:
    """Read a user folder (see the module docstring).

    Returns:
        ``(waves, labels, class_names)``: ``labels`` is ``-1`` for unlabelled files, ``None`` when no file is
        labelled.

    Raises:
        DataError: the folder is missing or holds no readable audio; or its labelled files form a single class.

    Shapes:
        - waves: ``(N, num_samples)``; labels: ``(N,)``
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"data path not found or not a folder: {root}")
    files = audio_files(root)
    if not files:
        raise DataError(f"{root} holds no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    waves, kept = read_files(files, root, sample_rate)
    if not waves:
        raise DataError(f"{root} holds no readable audio: every one of its {len(files)} audio files was skipped")
    clips = torch.stack([fit_center(w, num_samples)[0] for w in waves])
    groups = [p.relative_to(root).parts[0] if len(p.relative_to(root).parts) > 1 else None for p in kept]
    classes = sorted({g for g in groups if g is not None})
    if not classes:
        return clips, None, []
    if len(classes) == 1:
        raise DataError(
            f"{root} has a single class folder ({classes[0]}); probes need at least 2 classes: add a sub-folder per "
            "class, or move the files directly into the folder to pretrain without labels (no probes)"
        )
    labels = torch.tensor([-1 if g is None else classes.index(g) for g in groups])
    return clips, labels, classes


def load_recordings(
    files: list[Path], root: Path, sample_rate: int, num_samples: int, cache: Path, seed: int, what: str
) -> torch.Tensor:
    """Pretraining clips from recordings of any length: each recording's leading and trailing silence is
    trimmed (:func:`~ssl_audio.data.audio.speech_extent`), then one seeded random ``num_samples`` window is
    drawn (:func:`~ssl_audio.data.audio.random_crop`: a random crop of a longer recording, a shorter one at a
    random place in zeros), once; the clips are cached as 16-bit samples keyed by the files, their sizes and
    the settings.

    Shapes:
        - output: ``(len(readable files), num_samples)``
    """
    h = hashlib.sha1(f"{what} {sample_rate} {num_samples} {seed}".encode())
    for p in files:
        h.update(f"{p} {p.stat().st_size}".encode())
    path = cache / f"{what}-{h.hexdigest()[:16]}.npy"
    if path.exists():
        return torch.from_numpy(np.load(path)).float() / 32767
    waves, _ = read_files(files, root, sample_rate)
    if not waves:
        raise DataError(f"no readable recordings under {root}")
    g = torch.Generator().manual_seed(seed)
    trimmed = [w[slice(*speech_extent(w))] if speech_extent(w)[1] else w for w in waves]
    clips = torch.stack([random_crop(w, num_samples, g) for w in trimmed]).clamp(-1, 1)
    q = (clips * 32767).round().short()

    def write(f: io.BufferedWriter) -> None:
        np.save(f, q.numpy())

    write_cache(path, write)
    return q.float() / 32767

"""The ``sonicpi_fewshot`` column: few-shot classification of real instrument sounds with frozen embeddings.

Sonic Pi's samples (Debian ``sonic-pi-samples``: 165 FLAC files in ``/usr/share/sonic-pi/samples``) are
labelled by their file-name prefix before the first ``_`` (``bd``, ``drum``, ``tabla``, ... 14 classes). Each
is read mono, resampled to the sample rate, and cropped to the clip length from its onset (the first sample
reaching 10% of the peak, less 10 ms), zero-padded when shorter. Each class is split in half (the support
pool and the query pool, :func:`ssl_core.data.stratified_split`), and the score is the mean accuracy of
``n_way``-way ``k_shot``-shot episodes of a nearest-prototype classifier
(:func:`ssl_core.eval.few_shot_accuracy`, ``classifier="prototype"``) with a fixed seed; a class with fewer
than ``k_shot`` support or ``n_query`` query clips is left out.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

from ssl_audio.data.audio import UnreadableAudio, decode, fit_at, speech_extent, write_cache
from ssl_core.data import stratified_split
from ssl_core.eval import few_shot_accuracy

SONIC_PI = Path("/usr/share/sonic-pi/samples")


def load_sonic_pi(
    folder: Path, sample_rate: int, num_samples: int, cache: Path | None = None
) -> tuple[torch.Tensor, torch.Tensor, list[str]] | None:
    """``(waves (N, num_samples), labels (N,), class names)`` of the samples in ``folder``; ``None`` without
    any readable sample. With ``cache``, the clips are kept there (16-bit, keyed by the files and settings)."""
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".flac", ".wav", ".ogg") and "_" in p.stem)
    h = hashlib.sha1(f"sonicpi {sample_rate} {num_samples}".encode())
    for p in files:
        h.update(f"{p.name} {p.stat().st_size}".encode())
    path = None if cache is None else cache / f"sonicpi-{h.hexdigest()[:16]}.npz"
    if path is not None and path.exists():
        with np.load(path) as z:
            return (
                torch.from_numpy(z["waves"]).float() / 32767,
                torch.from_numpy(z["labels"]).long(),
                [str(c) for c in z["classes"]],
            )
    waves, names = [], []
    for p in files:
        try:
            wave = decode(p, str(p), sample_rate, max_seconds=30.0)
        except UnreadableAudio:
            continue
        start, _ = speech_extent(wave, threshold=0.1)
        waves.append(fit_at(wave, num_samples, max(start - sample_rate // 100, 0)))
        names.append(p.stem.split("_", 1)[0])
    if not waves:
        return None
    classes = sorted(set(names))
    q = (torch.stack(waves).clamp(-1, 1) * 32767).round().short()
    labels = torch.tensor([classes.index(n) for n in names])
    if path is not None:
        write_cache(path, lambda f: np.savez(f, waves=q.numpy(), labels=labels.numpy(), classes=np.array(classes)))
    return q.float() / 32767, labels, classes


class SonicPiFewShot:
    """Scores a row's ``embed`` function on Sonic Pi few-shot episodes (see the module docstring); ``None``
    (after one printed note) when the samples are not installed.

    Args:
        sample_rate, num_samples: the clips' format (the data's).
        episodes: episodes drawn (at least 2); n_way, k_shot, n_query: the episodes' shape.
        folder: where the samples are.
        batch_size: clips per ``embed`` call.
        cache: where the decoded clips are kept (``None``: decoded on every run).
    """

    def __init__(
        self,
        sample_rate: int,
        num_samples: int,
        episodes: int = 100,
        n_way: int = 5,
        k_shot: int = 1,
        n_query: int = 2,
        seed: int = 0,
        folder: Path = SONIC_PI,
        batch_size: int = 64,
        cache: Path | None = None,
    ) -> None:
        self.cache = cache
        self.sample_rate, self.num_samples, self.folder = sample_rate, num_samples, Path(folder)
        self.episodes, self.n_way, self.k_shot, self.n_query, self.seed = episodes, n_way, k_shot, n_query, seed
        self.batch_size = batch_size
        self._data, self._noted = None, False

    def data(self) -> tuple[torch.Tensor, torch.Tensor, list[str]] | None:
        """The loaded samples (read once), or ``None``."""
        if self._data is None and self.folder.is_dir():
            self._data = load_sonic_pi(self.folder, self.sample_rate, self.num_samples, self.cache)
        if self._data is None and not self._noted:
            self._noted = True
            print(
                f"note: sonicpi_fewshot skipped: no Sonic Pi samples in {self.folder} "
                "(sudo apt-get install sonic-pi-samples)",
                file=sys.stderr,
            )
        return self._data

    def __call__(self, row: str, embed, device, backbone) -> float | None:
        data = self.data()
        if data is None:
            return None
        waves, labels, _ = data
        train, test = stratified_split(labels, 0.5, self.seed)
        counts_tr = torch.bincount(labels[train], minlength=int(labels.max()) + 1)
        counts_te = torch.bincount(labels[test], minlength=int(labels.max()) + 1)
        ok = (counts_tr >= self.k_shot) & (counts_te >= self.n_query)
        if int(ok.sum()) < self.n_way:
            return None
        train, test = train[ok[labels[train]]], test[ok[labels[test]]]
        with torch.no_grad():
            emb = torch.cat(
                [
                    embed(waves[i : i + self.batch_size].to(device)).float().cpu()
                    for i in range(0, len(waves), self.batch_size)
                ]
            )
        result = few_shot_accuracy(
            emb[train],
            labels[train],
            emb[test],
            labels[test],
            n_way=self.n_way,
            k_shot=self.k_shot,
            episodes=self.episodes,
            n_query=self.n_query,
            classifier="prototype",
            seed=self.seed,
        )
        return result.mean

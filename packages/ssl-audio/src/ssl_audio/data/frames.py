"""Frame-level labels and the ``frame_linear`` probe: which word (or silence) is spoken in each frame.

Utterances are keywords strung together with known silences: each utterance of ``seconds`` seconds starts
with a silence of 0.1 to 0.4 s, then repeatedly takes a random keyword clip's spoken part (its ``onset`` to
``offset``) followed by a silence of 0.1 to 0.4 s, until the next word would not fit; the rest is silence.
Every draw comes from one generator seeded with the seed, so the utterances are the same on every run. Each
10 ms frame is labelled with the class of the sample at its centre: the word, or ``silence`` (the last class).

The probe fits a linear classifier (:func:`ssl_core.eval.linear_probe`) on frame features of utterances spoken
by probe-train voices and scores the frames of utterances spoken by probe-test voices. A backbone's frame
``j`` is labelled with the 10 ms label frame holding its centre: ``j / frame_rate`` seconds when the backbone
yields ``floor(T * frame_rate / sample_rate) + 1`` frames (centred STFT frames, as :class:`~ssl_audio.frontend.LogMel`),
else ``(j + 0.5) / frame_rate`` seconds (frames tiling the signal, as strided convolutions).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch

from ssl_audio.frontend import LogMel, LogMelConfig
from ssl_core.eval import linear_probe

LABEL_HOP_S = 0.01  # 10 ms label frames
GAP_S = (0.1, 0.4)  # silences between words


@dataclass
class FrameUtterances:
    """Utterances with one label per sample.

    Args:
        waves: the utterances.
        labels: the class of each sample (a word index, or ``silence``, the last class).
        class_names: the words, then ``"silence"``.

    Shapes:
        - waves, labels: ``(U, T)``
    """

    waves: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    sample_rate: int

    def frame_labels(self, hop_s: float = LABEL_HOP_S) -> torch.Tensor:
        """One label per ``hop_s`` frame: the label of the sample at the frame's centre, ``(U, T // hop)``."""
        hop = round(self.sample_rate * hop_s)
        n = self.labels.shape[1] // hop
        return self.labels[:, torch.arange(n) * hop + hop // 2]

    def align(self, num_frames: int, frame_rate: float) -> torch.Tensor:
        """The labels of a backbone's ``num_frames`` frames at ``frame_rate`` frames per second: each frame takes
        the 10 ms label frame holding its centre (see the module docstring).

        Shapes:
            - output: ``(U, num_frames)``
        """
        t = self.waves.shape[1]
        centred = num_frames == int(t * frame_rate / self.sample_rate) + 1
        centres = (torch.arange(num_frames, dtype=torch.float64) + (0.0 if centred else 0.5)) / frame_rate
        per10 = self.frame_labels()
        idx = (centres / LABEL_HOP_S).floor().long().clamp(0, per10.shape[1] - 1)
        return per10[:, idx]


def build_utterances(
    waves: torch.Tensor,
    words: torch.Tensor,
    onsets: torch.Tensor,
    offsets: torch.Tensor,
    class_names: list[str],
    count: int,
    sample_rate: int,
    seconds: float = 3.0,
    seed: int = 0,
) -> FrameUtterances:
    """``count`` utterances of ``seconds`` from keyword clips (see the module docstring).

    Shapes:
        - waves: ``(N, num_samples)``; words, onsets, offsets: ``(N,)``
    """
    g = torch.Generator().manual_seed(seed)
    total = round(seconds * sample_rate)
    silence = len(class_names)
    out = torch.zeros(count, total)
    labels = torch.full((count, total), silence, dtype=torch.long)

    def gap() -> int:
        return round((GAP_S[0] + (GAP_S[1] - GAP_S[0]) * float(torch.rand((), generator=g))) * sample_rate)

    for u in range(count):
        pos = gap()
        while True:
            i = int(torch.randint(len(waves), (), generator=g))
            seg = waves[i, int(onsets[i]) : int(offsets[i])]
            if pos + len(seg) > total:
                break
            out[u, pos : pos + len(seg)] = seg
            labels[u, pos : pos + len(seg)] = int(words[i])
            pos += len(seg) + gap()
    return FrameUtterances(out, labels, [*class_names, "silence"], sample_rate)


class FrameProbe:
    """The ``frame_linear`` column: linear-probe accuracy on frame features (see the module docstring).

    Rows with a backbone that has ``frames`` and ``frame_rate`` use ``backbone.frames``; ``raw_input`` uses
    the un-normalised 64-band log-mel frames; other rows get ``None``.

    Args:
        train, test: utterances of probe-train and probe-test voices.
        max_frames: at most this many training frames (a seeded subset) are fitted, to keep the probe cheap.
        batch_size: utterances per ``frames`` call.
    """

    def __init__(
        self,
        train: FrameUtterances,
        test: FrameUtterances,
        max_frames: int = 10_000,
        batch_size: int = 16,
        seed: int = 0,
    ) -> None:
        self.train, self.test = train, test
        self.max_frames, self.batch_size, self.seed = max_frames, batch_size, seed

    def _features(self, utts: FrameUtterances, fn, frame_rate: float, device) -> tuple[torch.Tensor, torch.Tensor]:
        feats = []
        with torch.no_grad():
            for i in range(0, len(utts.waves), self.batch_size):
                feats.append(fn(utts.waves[i : i + self.batch_size].to(device)).float().cpu())
        x = torch.cat(feats)  # (U, F, D)
        y = utts.align(x.shape[1], frame_rate)
        return x.flatten(0, 1), y.flatten()

    def __call__(self, row: str, embed, device, backbone) -> float | None:
        sr = self.train.sample_rate
        if backbone is None:
            if row != "raw_input":
                return None
            logmel = LogMel(LogMelConfig(normalize="none"), sr)
            fn, rate, dev = (lambda w: logmel(w).transpose(1, 2)), sr / logmel.hop_length, "cpu"
        elif hasattr(backbone, "frames") and hasattr(backbone, "frame_rate"):
            fn, rate, dev = backbone.frames, float(backbone.frame_rate), device
        else:
            return None
        was_training = getattr(backbone, "training", False)
        if backbone is not None:
            backbone.eval()
        try:
            x, y = self._features(self.train, fn, rate, dev)
            xt, yt = self._features(self.test, fn, rate, dev)
        except Exception as e:  # a backbone that cannot take utterances of a few seconds
            print(f"note: frame_linear skipped for {row}: {type(e).__name__}: {e}", file=sys.stderr)
            return None
        finally:
            if was_training:
                backbone.train()
        if len(x) > self.max_frames:
            keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.seed))[: self.max_frames]
            x, y = x[keep], y[keep]
        return linear_probe(x, y, xt, yt, max_iter=100, seed=self.seed).top1

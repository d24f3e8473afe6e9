"""The audio data configuration, the bundled data sets, and where generated data is cached."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ssl_core.errors import ConfigError
from ssl_core.io import modality_cache

NAMES = ("keywords", "klettres", "tuxpaint")

DATASETS = {
    "keywords": "spoken keywords (default): 20 Speech-Commands words x 96 espeak-ng voices (8 accents x 12 variants), "
    "1 s at 16 kHz, generated and cached; probes score unseen voices (Debian espeak-ng)",
    "klettres": "pretrain on KLettres' 1,836 spoken letters and syllables in 20 languages (Debian klettres-data); "
    "probes on the keywords",
    "tuxpaint": "pretrain on Tux Paint's spoken stamp descriptions (Debian tuxpaint-stamps-default); probes on the "
    "keywords",
    "path": "--data PATH: a folder of WAV/FLAC/OGG files; one sub-folder per class (probes), or flat (unlabelled)",
}


@dataclass
class AudioDataConfig:
    """Which audio to load (``--set data.<name>=<value>``).

    Args:
        name: ``keywords`` (default): spoken keywords generated with espeak-ng (:mod:`ssl_audio.data.keywords`);
            ``klettres`` / ``tuxpaint``: pretrain on those recordings, probe on the keywords. Ignored with ``path``.
        path: a folder of WAV/FLAC/OGG files (:mod:`ssl_audio.data.folder`): one sub-folder per class, or flat
            (no labels, no probes).
        words: the first ``words`` words of :data:`ssl_audio.data.keywords.VOCABULARY` (2 to 35).
        accents: the first ``accents`` English accents of :data:`~ssl_audio.data.keywords.ACCENTS` (1 to 8).
        variants: the first ``variants`` voice variants of :data:`~ssl_audio.data.keywords.VARIANTS` (1 to 24);
            a voice is an (accent, variant) pair.
        test_fraction: share of the voices (keywords) or of each class (folders) held out as the probe test split.
        sample_rate: samples per second of every clip.
        num_samples: samples per clip (clips are cropped or zero-padded to it).
        frame_utterances: utterances of the frame-level probe (3/4 from probe-train voices, 1/4 from probe-test
            voices); 0 turns the ``frame_linear`` column off.
        fewshot_episodes: episodes of the Sonic Pi few-shot probe; 0 turns the ``sonicpi_fewshot`` column off.
        prototypes: score Bird-MAE's prototypical probe (the ``proto_top1`` column) for backbones with patch
            tokens (the spectrogram ViT of Audio-MAE and ATST); about 20 s per row on 2 cores.
        workers: parallel espeak-ng processes (0: one per CPU core).
        cache_dir: where generated and decoded clips are cached (default ``~/.cache/selfsup/audio``).
        seed: seeds the voices' speed and pitch, the voice split, the crops and the probe utterances.
    """

    name: str = "keywords"
    path: str | None = None
    words: int = 20
    accents: int = 8
    variants: int = 12
    test_fraction: float = 0.2
    sample_rate: int = 16_000
    num_samples: int = 16_000
    frame_utterances: int = 200
    fewshot_episodes: int = 100
    prototypes: bool = True
    workers: int = 0
    cache_dir: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        from ssl_audio.data.keywords import ACCENTS, VARIANTS, VOCABULARY

        if self.name not in NAMES:
            raise ConfigError(f"data.name must be one of {', '.join(NAMES)}, got {self.name!r}")
        for field, value, top in (
            ("words", self.words, len(VOCABULARY)),
            ("accents", self.accents, len(ACCENTS)),
            ("variants", self.variants, len(VARIANTS)),
        ):
            if not 1 <= value <= top:
                raise ConfigError(f"data.{field} must lie in 1..{top}, got {value}")
        if self.words < 2:
            raise ConfigError(f"data.words must be at least 2 (probes need 2 classes), got {self.words}")
        if self.accents * self.variants < 2:
            raise ConfigError("data.accents * data.variants must be at least 2: the probe split is by voice")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"data.test_fraction must lie in (0, 1), got {self.test_fraction}")
        if self.sample_rate < 1000 or self.num_samples < 400:
            raise ConfigError(
                f"data.sample_rate must be >= 1000 and data.num_samples >= 400, got {self.sample_rate}, "
                f"{self.num_samples}"
            )
        if self.frame_utterances < 0 or self.fewshot_episodes < 0 or self.workers < 0:
            raise ConfigError("data.frame_utterances, data.fewshot_episodes and data.workers must not be negative")
        if self.fewshot_episodes == 1:
            raise ConfigError("data.fewshot_episodes must be 0 (off) or at least 2 (for the interval)")


def cache_root(cache_dir: str | None) -> Path:
    """Where generated and decoded clips are written: ``cache_dir``, else ``~/.cache/selfsup/audio``
    (:func:`ssl_core.io.modality_cache`)."""
    return modality_cache("audio", cache_dir)

"""``load_data``: the audio data a run pretrains and probes on."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from ssl_audio.data.config import AudioDataConfig, cache_root
from ssl_audio.data.folder import audio_files, load_folder, load_recordings
from ssl_audio.data.frames import FrameProbe, build_utterances
from ssl_audio.data.keywords import ACCENTS, VARIANTS, VOCABULARY, KeywordSet, KeywordSpec, load_keywords
from ssl_audio.data.prototypes import prototypical_column
from ssl_audio.data.sonicpi import SonicPiFewShot
from ssl_audio.frontend import logmel_statistics, mfcc_statistics
from ssl_audio.info import AudioInfo
from ssl_core.data import DataBundle, LabeledSplit, stratified_split
from ssl_core.errors import DataError

KLETTRES = Path("/usr/share/klettres")
TUXPAINT = Path("/usr/share/tuxpaint/stamps")
FRAME_TRAIN_SHARE = 0.75  # of the frame probe's utterances, spoken by probe-train voices


def keyword_spec(cfg: AudioDataConfig) -> KeywordSpec:
    """The generator settings of ``cfg``."""
    return KeywordSpec(
        words=VOCABULARY[: cfg.words],
        accents=ACCENTS[: cfg.accents],
        variants=VARIANTS[: cfg.variants],
        sample_rate=cfg.sample_rate,
        num_samples=cfg.num_samples,
        seed=cfg.seed,
    )


def frame_probe(ks: KeywordSet, train: torch.Tensor, test: torch.Tensor, cfg: AudioDataConfig) -> FrameProbe:
    """The ``frame_linear`` probe on utterances of the keyword clips ``train`` and ``test`` (indices)."""
    n_train = round(cfg.frame_utterances * FRAME_TRAIN_SHARE)

    def utts(idx: torch.Tensor, count: int, seed: int):
        return build_utterances(
            ks.waves[idx], ks.word[idx], ks.onset[idx], ks.offset[idx], ks.words, count, cfg.sample_rate, seed=seed
        )

    return FrameProbe(
        utts(train, n_train, cfg.seed), utts(test, cfg.frame_utterances - n_train, cfg.seed + 1), seed=cfg.seed
    )


def _baselines(cfg: AudioDataConfig):
    if cfg.sample_rate == 16_000:
        return logmel_statistics, mfcc_statistics
    return (
        functools.partial(logmel_statistics, sample_rate=cfg.sample_rate),
        functools.partial(mfcc_statistics, sample_rate=cfg.sample_rate),
    )


def _bundle(cfg: AudioDataConfig, train, description: str, splits, extra_probes) -> DataBundle:
    logmel, mfcc = _baselines(cfg)
    probe_train, probe_test = splits if splits else (None, None)
    bundle = DataBundle(
        train=train,
        info=AudioInfo(cfg.sample_rate, cfg.num_samples),
        description=description,
        probe_train=probe_train,
        probe_test=probe_test,
        raw_features=logmel,
        extra_baselines={"mfcc_stats": mfcc},
        extra_probes=dict(extra_probes) if splits else {},
    )
    if splits and cfg.prototypes:
        bundle.extra_probes["proto_top1"] = prototypical_column(bundle)
    return bundle


def _fewshot(cfg: AudioDataConfig) -> dict:
    if not cfg.fewshot_episodes:
        return {}
    return {
        "sonicpi_fewshot": SonicPiFewShot(
            cfg.sample_rate, cfg.num_samples, cfg.fewshot_episodes, seed=cfg.seed, cache=cache_root(cfg.cache_dir)
        )
    }


def _load_path(cfg: AudioDataConfig) -> DataBundle:
    root = Path(cfg.path).expanduser()
    waves, labels, classes = load_folder(root, cfg.sample_rate, cfg.num_samples)
    desc = f"{root}: {len(waves):,} clips of {cfg.num_samples / cfg.sample_rate:g} s at {cfg.sample_rate:,} Hz"
    if labels is None:
        return _bundle(cfg, waves, desc + ", no labels (probes skipped)", None, {})
    tr, te = stratified_split(labels, cfg.test_fraction, cfg.seed)
    splits = (LabeledSplit(waves[tr], labels[tr], classes), LabeledSplit(waves[te], labels[te], classes))
    desc += f", {len(classes)} classes (probes: {len(tr)} / {len(te)} clips)"
    return _bundle(cfg, waves, desc, splits, _fewshot(cfg))


def _pretrain_recordings(cfg: AudioDataConfig) -> tuple[torch.Tensor, str]:
    cache = cache_root(cfg.cache_dir)
    if cfg.name == "klettres":
        files = [p for p in audio_files(KLETTRES) if p.parent.name in ("alpha", "syllab")] if KLETTRES.is_dir() else []
        if not files:
            raise DataError(
                f"no KLettres recordings in {KLETTRES}: run `sudo apt-get install klettres-data` (or scripts/setup.sh)"
            )
        waves = load_recordings(files, KLETTRES, cfg.sample_rate, cfg.num_samples, cache, cfg.seed, "klettres")
        langs = len({p.relative_to(KLETTRES).parts[0] for p in files})
        return waves, f"KLettres: {len(waves):,} spoken letters and syllables in {langs} languages"
    files = sorted(TUXPAINT.rglob("*_desc_*.ogg")) if TUXPAINT.is_dir() else []
    if not files:
        raise DataError(
            f"no Tux Paint stamp descriptions in {TUXPAINT}: run `sudo apt-get install tuxpaint-stamps-default`"
        )
    waves = load_recordings(files, TUXPAINT, cfg.sample_rate, cfg.num_samples, cache, cfg.seed, "tuxpaint")
    return waves, f"Tux Paint: {len(waves):,} spoken stamp descriptions"


def load_data(cfg: AudioDataConfig) -> DataBundle:
    """Load the audio ``cfg`` names (see :class:`AudioDataConfig`).

    Keywords: pretraining on the clips of the probe-train voices, probes (kNN / linear on word labels, the
    ``frame_linear`` frame-level probe, the ``sonicpi_fewshot`` few-shot probe) scoring unseen voices. KLettres
    / Tux Paint: pretraining on those recordings, the same probes. A folder: pretraining on every file, probes
    on its sub-folder labels.
    """
    if cfg.path is not None:
        return _load_path(cfg)
    ks = load_keywords(keyword_spec(cfg), cache_root(cfg.cache_dir), cfg.workers)
    tr, te = ks.voice_split(cfg.test_fraction, cfg.seed)
    splits = (
        LabeledSplit(ks.waves[tr], ks.word[tr], ks.words),
        LabeledSplit(ks.waves[te], ks.word[te], ks.words),
    )
    n_test_voices = len(ks.voice[te].unique())
    probes_desc = (
        f"probes: {len(ks.words)} words, {len(tr):,} clips of {len(ks.voices) - n_test_voices} voices / "
        f"{len(te):,} clips of {n_test_voices} unseen voices"
    )
    extra = {}
    if cfg.frame_utterances:
        extra["frame_linear"] = frame_probe(ks, tr, te, cfg)
    extra.update(_fewshot(cfg))
    if cfg.name == "keywords":
        desc = f"spoken keywords (espeak-ng): pretraining on {len(tr):,} clips of 1 s; {probes_desc}"
        return _bundle(cfg, ks.waves[tr], desc, splits, extra)
    waves, what = _pretrain_recordings(cfg)
    return _bundle(
        cfg, waves, f"{what}, {cfg.num_samples / cfg.sample_rate:g} s crops; {probes_desc} (keywords)", splits, extra
    )

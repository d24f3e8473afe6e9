"""ssl_audio.data: the espeak-ng keywords, user folders and their bad input, frame labels, the extra probes."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from ssl_audio.data import (
    AudioDataConfig,
    FrameProbe,
    SonicPiFewShot,
    build_utterances,
    fit_center,
    keyword_spec,
    load_data,
    load_keywords,
    random_crop,
    read_audio,
)
from ssl_audio.data import folder as folder_mod
from ssl_audio.data import keywords as kw_mod
from ssl_audio.data import load as load_mod
from ssl_audio.frontend import logmel_statistics
from ssl_core.data import DataBundle
from ssl_core.errors import DataError

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
SR = 16_000


def tiny(tmp_path, **kw) -> AudioDataConfig:
    """3 words x 4 voices (2 accents x 2 variants), 2 probe voices... at most."""
    kw = {"words": 3, "accents": 2, "variants": 2, "test_fraction": 0.25, "frame_utterances": 8, **kw}
    return AudioDataConfig(cache_dir=str(tmp_path / "cache"), fewshot_episodes=0, **kw)


def tone(freq: float, seconds: float, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# keywords


@needs_espeak
def test_keywords_bundle_and_voice_disjoint_split(tmp_path):
    cfg = tiny(tmp_path)
    b = load_data(cfg)
    assert b.info.sample_rate == SR and b.info.num_samples == SR
    assert b.train.shape == (9, SR) and b.train.dtype == torch.float32
    assert len(b.probe_train.labels) == 9 and len(b.probe_test.labels) == 3  # 3 voices / 1 unseen voice
    assert list(b.probe_train.class_names) == ["zero", "one", "two"]
    assert float(b.train.abs().max()) <= 1.0 and float(b.train.abs().max()) > 0.2
    assert b.raw_features is logmel_statistics and b.raw_features(b.train[:2]).shape == (2, 128)
    assert set(b.extra_probes) == {"frame_linear", "proto_top1"}
    if "extra_baselines" in {f.name for f in dataclasses.fields(DataBundle)}:
        assert "mfcc_stats" in b.extra_baselines
    ks = load_keywords(keyword_spec(cfg), tmp_path / "cache")
    tr, te = ks.voice_split(cfg.test_fraction, cfg.seed)
    assert set(ks.voice[tr].tolist()).isdisjoint(ks.voice[te].tolist())
    assert torch.equal(b.probe_test.inputs, ks.waves[te])
    # the word is centred: its onset and offset are as far from the edges (within a sample)
    assert ((ks.onset - (SR - ks.offset)).abs() <= 1).all()


@needs_espeak
def test_keywords_are_deterministic_and_cached(tmp_path, monkeypatch):
    a = load_keywords(keyword_spec(tiny(tmp_path)), tmp_path / "a")
    b = load_keywords(keyword_spec(tiny(tmp_path)), tmp_path / "b")
    assert torch.equal(a.waves, b.waves) and torch.equal(a.onset, b.onset)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".npz")  # no temp files left

    def boom(*args, **kwargs):
        raise AssertionError("generated again instead of reading the cache")

    monkeypatch.setattr(kw_mod, "generate", boom)
    c = load_keywords(keyword_spec(tiny(tmp_path)), tmp_path / "a")
    assert torch.equal(a.waves, c.waves) and torch.equal(a.word, c.word)
    other = keyword_spec(tiny(tmp_path, seed=1))
    assert other.key() != keyword_spec(tiny(tmp_path)).key()
    # a changed generator (its code) never reads clips cached by another version
    before = keyword_spec(tiny(tmp_path)).key()
    monkeypatch.setattr(kw_mod, "generator_digest", lambda: "another-version")
    assert keyword_spec(tiny(tmp_path)).key() != before


def test_missing_espeak_is_one_line_data_error(tmp_path, monkeypatch):
    monkeypatch.setattr(kw_mod, "ESPEAK", "espeak-ng-not-installed")
    with pytest.raises(DataError, match="apt-get install espeak-ng") as e:
        load_data(tiny(tmp_path))
    assert "\n" not in str(e.value)


def test_tuxpaint_missing_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(load_mod, "TUXPAINT", tmp_path / "no-tuxpaint")
    monkeypatch.setattr(load_mod, "load_keywords", lambda *a, **k: _fake_keywords())
    with pytest.raises(DataError, match="tuxpaint-stamps-default"):
        load_data(tiny(tmp_path, name="tuxpaint"))


def _fake_keywords() -> kw_mod.KeywordSet:
    n_words, n_voices = 3, 4
    word = torch.arange(n_words).repeat(n_voices)
    voice = torch.arange(n_voices).repeat_interleave(n_words)
    waves = torch.zeros(len(word), SR)
    for i, w in enumerate(word.tolist()):
        waves[i, 4000:12000] = torch.from_numpy(tone(300.0 * (w + 1), 0.5))
    onset, offset = torch.full((len(word),), 4000), torch.full((len(word),), 12000)
    return kw_mod.KeywordSet(waves, word, voice, onset, offset, ["a", "b", "c"], [f"v{i}" for i in range(n_voices)])


def test_recordings_are_cropped_and_cached(tmp_path, monkeypatch):
    root = tmp_path / "rec" / "en" / "alpha"
    root.mkdir(parents=True)
    sf.write(root / "long.ogg", tone(440, 2.5, 22050), 22050)
    sf.write(root / "short.ogg", tone(440, 0.3, 22050), 22050)
    files = folder_mod.audio_files(tmp_path / "rec")
    clips = folder_mod.load_recordings(files, tmp_path / "rec", SR, SR, tmp_path / "cache", 0, "klettres")
    assert clips.shape == (2, SR)
    assert (clips[0].abs() > 0.1).float().mean() > 0.5  # a window of the long tone
    assert (clips[1].abs() > 0).sum() <= int(0.3 * SR) + 5  # the short one, placed in zeros
    monkeypatch.setattr(folder_mod, "read_files", lambda *a: (_ for _ in ()).throw(AssertionError("not cached")))
    again = folder_mod.load_recordings(files, tmp_path / "rec", SR, SR, tmp_path / "cache", 0, "klettres")
    assert torch.equal(clips, again)


def test_fit_and_crop_policies():
    clip, shift = fit_center(torch.ones(10), 16)
    assert shift == 3 and clip.tolist() == [0] * 3 + [1] * 10 + [0] * 3
    clip, shift = fit_center(torch.arange(20.0), 16)
    assert shift == -2 and clip[0] == 2 and clip[-1] == 17
    g = torch.Generator().manual_seed(0)
    assert random_crop(torch.ones(5), 8, g).sum() == 5 and random_crop(torch.arange(30.0), 8, g).shape == (8,)


# user folders and bad input


def labelled_folder(tmp_path):
    root = tmp_path / "data"
    for cls, freq in (("low", 200.0), ("high", 2000.0)):
        (root / cls).mkdir(parents=True)
        for i in range(4):
            sf.write(root / cls / f"{i}.wav", tone(freq * (1 + 0.05 * i), 0.8), SR)
    return root


def test_folder_labels_and_probes(tmp_path):
    root = labelled_folder(tmp_path)
    (root / "README.txt").write_text("not audio, and not an audio extension: ignored")
    b = load_data(AudioDataConfig(path=str(root), fewshot_episodes=0, test_fraction=0.25))
    assert b.train.shape == (8, SR)
    assert list(b.probe_train.class_names) == ["high", "low"]
    assert len(b.probe_train.labels) == 6 and len(b.probe_test.labels) == 2
    assert "frame_linear" not in b.extra_probes


def test_flat_folder_is_unlabelled(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    for i in range(3):
        sf.write(root / f"{i}.flac", tone(300 + 100 * i, 0.5), SR)
    b = load_data(AudioDataConfig(path=str(root)))
    assert b.probe_train is None and b.probe_test is None and b.train.shape == (3, SR)
    assert "no labels" in b.description


def test_unreadable_and_empty_files_are_skipped_and_counted(tmp_path, capsys):
    root = labelled_folder(tmp_path)
    (root / "low" / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    (root / "high" / "notes.wav").write_text("this is a text file, not audio\n")
    (root / "high" / "empty.flac").write_bytes(b"")
    sf.write(root / "high" / "silent.wav", np.zeros(0, np.float32), SR)  # a valid header, no samples
    b = load_data(AudioDataConfig(path=str(root), fewshot_episodes=0))
    assert b.train.shape == (8, SR)
    err = capsys.readouterr().err
    line = [ln for ln in err.splitlines() if "skipped" in ln]
    assert len(line) == 1 and "skipped 4 files that are not readable audio:" in line[0]
    for name in ("corrupt.wav", "notes.wav", "empty.flac", "silent.wav (no samples)"):
        assert name in line[0]


def test_nan_samples_are_refused_naming_the_file(tmp_path):
    root = labelled_folder(tmp_path)
    x = tone(500, 0.5)
    x[100] = np.nan
    sf.write(root / "low" / "bad.wav", x, SR, subtype="FLOAT")
    with pytest.raises(DataError, match=r"bad\.wav holds 1 non-finite"):
        load_data(AudioDataConfig(path=str(root)))


def test_resampling_mixdown_and_24_bit(tmp_path):
    sf.write(tmp_path / "8k.wav", tone(440, 1.0, 8000), 8000)
    sf.write(tmp_path / "44k.wav", tone(440, 0.5, 44100), 44100)
    stereo = np.stack([tone(440, 0.25), np.zeros(4000, np.float32)], 1)
    sf.write(tmp_path / "stereo.flac", stereo, SR)
    sf.write(tmp_path / "pcm24.wav", tone(440, 0.25, amp=0.75), SR, subtype="PCM_24")
    assert read_audio(tmp_path / "8k.wav", SR).shape == (16000,)
    assert read_audio(tmp_path / "44k.wav", SR).shape == (8000,)
    assert read_audio(tmp_path / "44k.wav", 22050).shape == (11025,)
    mono = read_audio(tmp_path / "stereo.flac", SR)
    assert mono.shape == (4000,) and abs(float(mono.abs().max()) - 0.25) < 0.01  # the mean of the two channels
    x = read_audio(tmp_path / "pcm24.wav", SR)
    assert x.dtype == torch.float32 and abs(float(x.abs().max()) - 0.75) < 1e-3
    with pytest.raises(DataError, match="not found"):
        read_audio(tmp_path / "missing.wav")
    (tmp_path / "text.wav").write_text("hello")
    with pytest.raises(DataError, match="not readable audio"):
        read_audio(tmp_path / "text.wav")


def test_single_class_and_empty_folders(tmp_path):
    one = tmp_path / "one" / "dogs"
    one.mkdir(parents=True)
    sf.write(one / "a.wav", tone(300, 0.3), SR)
    sf.write(one / "b.wav", tone(400, 0.3), SR)
    with pytest.raises(DataError, match="at least 2 classes") as e:
        load_data(AudioDataConfig(path=str(tmp_path / "one")))
    assert "without labels" in str(e.value) and "\n" not in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no audio files"):
        load_data(AudioDataConfig(path=str(tmp_path / "empty")))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.wav").write_text("nope")
    with pytest.raises(DataError, match="no readable audio"):
        load_data(AudioDataConfig(path=str(bad)))
    with pytest.raises(DataError, match="not found"):
        load_data(AudioDataConfig(path=str(tmp_path / "nowhere")))


# frame labels and the extra probes


def test_frame_labels_are_aligned():
    ks = _fake_keywords()
    utts = build_utterances(ks.waves, ks.word, ks.onset, ks.offset, ks.words, 4, SR, seconds=2.0, seed=0)
    assert utts.waves.shape == (4, 2 * SR) and utts.class_names[-1] == "silence"
    # the labels mark exactly the non-zero samples (the tones) with their words, the rest silence
    speaking = utts.labels != 3
    assert torch.equal(speaking, utts.waves != 0) or (speaking & (utts.waves == 0)).sum() < 10
    assert ((utts.labels != 3).sum(1) > 0).all()
    # 10 ms labels take the sample at the frame centre; backbone frames map onto them by time
    per10 = utts.frame_labels()
    assert per10.shape == (4, 200) and torch.equal(per10[:, 7], utts.labels[:, 7 * 160 + 80])
    assert torch.equal(utts.align(201, 100.0), per10[:, [min(j, 199) for j in range(201)]])  # centred frames
    assert torch.equal(utts.align(100, 50.0), per10[:, [2 * j + 1 for j in range(100)]])  # 20 ms tiling frames
    again = build_utterances(ks.waves, ks.word, ks.onset, ks.offset, ks.words, 4, SR, seconds=2.0, seed=0)
    assert torch.equal(utts.waves, again.waves)


class FrameNet(torch.nn.Module):
    """A stand-in backbone: 20 ms frames of the magnitudes of the 32 lowest FFT bins (0 to 1,550 Hz)."""

    embed_dim, frame_rate = 32, 50.0

    def frames(self, wave):
        x = wave.unfold(-1, 320, 320)  # (B, F, 320)
        return torch.log1p(torch.fft.rfft(x).abs()[..., :32])

    def forward(self, wave):
        return self.frames(wave).mean(1)


def test_frame_probe_rows():
    ks = _fake_keywords()
    tr, te = torch.arange(6), torch.arange(6, 12)
    utt = lambda idx, seed: build_utterances(  # noqa: E731
        ks.waves[idx], ks.word[idx], ks.onset[idx], ks.offset[idx], ks.words, 4, SR, seconds=2.0, seed=seed
    )
    probe = FrameProbe(utt(tr, 0), utt(te, 1))
    raw = probe("raw_input", logmel_statistics, "cpu", None)
    assert raw is not None and raw > 0.9  # tones of three pitches and silence
    net = FrameNet()
    assert probe("pretrained", net, "cpu", net) > 0.9
    assert probe("pretrained", net, "cpu", None) is None
    assert probe("pretrained", net, "cpu", torch.nn.Linear(2, 2)) is None


def test_sonicpi_fewshot_column(tmp_path, capsys):
    folder = tmp_path / "samples"
    folder.mkdir()
    for c, freq in enumerate((150, 300, 600, 1200, 2400, 4800)):
        for i in range(3 + c % 2):
            x = np.concatenate([np.zeros(800, np.float32), tone(freq * (1 + 0.02 * i), 0.6, 44100)])
            sf.write(folder / f"cls{c}_{i}.flac", np.stack([x, x], 1), 44100)
    (folder / "README.md").write_text("ignored")
    probe = SonicPiFewShot(SR, SR, episodes=10, folder=folder, cache=tmp_path / "cache")
    score = probe("raw_input", logmel_statistics, "cpu", None)
    assert score is not None and score > 0.8
    waves, labels, classes = probe.data()
    assert waves.shape == (21, SR) and classes == [f"cls{c}" for c in range(6)]
    assert waves[0, : SR // 200].abs().max() == 0 or waves[0, :10].abs().max() < 0.01  # cropped at the onset
    cached = SonicPiFewShot(SR, SR, episodes=10, folder=folder, cache=tmp_path / "cache")
    assert cached("raw_input", logmel_statistics, "cpu", None) == score
    missing = SonicPiFewShot(SR, SR, episodes=10, folder=tmp_path / "none")
    assert missing("raw_input", logmel_statistics, "cpu", None) is None
    assert missing("pretrained", logmel_statistics, "cpu", None) is None
    assert capsys.readouterr().err.count("sonicpi_fewshot skipped") == 1

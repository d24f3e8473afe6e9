"""The front ends equal torchaudio's transforms and the naive definitions of the baselines' statistics."""

import math

import torch
import torchaudio

from ssl_audio.frontend import LogMel, LogMelConfig, band_statistics, logmel_statistics, mfcc, mfcc_statistics


def _tones(b: int = 3, sr: int = 16_000) -> torch.Tensor:
    t = torch.arange(sr) / sr
    freqs = torch.tensor([220.0, 880.0, 3000.0])[:b, None]
    noise = torch.randn(b, sr, generator=torch.Generator().manual_seed(0))
    return 0.3 * torch.sin(2 * math.pi * freqs * t) + 0.01 * noise


def test_log_mel_equals_torchaudio_mel_spectrogram_then_log():
    wave = _tones()
    ours = LogMel(LogMelConfig(normalize="none"))(wave)
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=16_000, n_fft=400, win_length=400, hop_length=160, f_min=60.0, f_max=7800.0, n_mels=64
    )(wave)
    torch.testing.assert_close(ours, torch.log(mel + 1e-6))
    assert ours.shape == (3, 64, 101) and LogMel().num_frames(16_000) == 101
    # a 220 Hz tone has its energy below a 3 kHz tone's
    peak = ours.mean(-1).argmax(-1)
    assert peak[0] < peak[1] < peak[2]


def test_clip_normalisation_standardises_each_clip():
    x = LogMel()(_tones())
    torch.testing.assert_close(x.mean((-2, -1)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std((-2, -1)), torch.ones(3), atol=1e-4, rtol=0)


def test_mfcc_with_deltas_and_statistics():
    wave = _tones()
    feats = mfcc(wave)
    assert feats.shape == (3, 101, 39)
    base = torchaudio.transforms.MFCC(
        sample_rate=16_000, n_mfcc=13, melkwargs={"n_fft": 400, "win_length": 400, "hop_length": 160, "n_mels": 23}
    )(wave)
    torch.testing.assert_close(feats[..., :13], base.transpose(1, 2))
    # first deltas of a constant sequence vanish
    const = mfcc(torch.full((1, 16_000), 0.1))
    assert const[0, 5:-5, 13:26].abs().max() < 1e-3
    stats = mfcc_statistics(wave)
    torch.testing.assert_close(stats, torch.cat([feats.mean(1), feats.std(1)], -1))


def test_band_statistics_is_mean_then_std():
    x = torch.randn(2, 5, 7)
    torch.testing.assert_close(band_statistics(x), torch.cat([x.mean(-1), x.std(-1)], -1))
    assert logmel_statistics(_tones()).shape == (3, 128)


def test_log_mel_buffers_can_be_checkpointed(tmp_path):
    from safetensors.torch import load_file, save_file

    module = LogMel()
    save_file(module.state_dict(), tmp_path / "m.safetensors")
    back = load_file(tmp_path / "m.safetensors")
    torch.testing.assert_close(back["mel.spectrogram.window"], torch.hann_window(400))

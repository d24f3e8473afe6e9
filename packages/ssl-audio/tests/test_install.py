"""The package's domain libraries work in this environment (audio I/O without ffmpeg, spectrograms)."""

import numpy as np
import soundfile as sf
import torch
import torchaudio

import ssl_audio


def test_soundfile_roundtrip_and_mel_spectrogram(tmp_path):
    sr = 16_000
    t = np.arange(sr // 4) / sr
    wave = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    sf.write(tmp_path / "a.flac", wave, sr)
    back, sr2 = sf.read(tmp_path / "a.flac", dtype="float32")
    assert sr2 == sr and np.abs(back - wave).max() < 1e-3
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=sr, n_mels=32)(torch.from_numpy(back))
    assert mel.shape[0] == 32
    # a 440 Hz tone puts its energy in the low mel bins
    assert mel[:16].sum() > 10 * mel[16:].sum()
    assert ssl_audio.__version__

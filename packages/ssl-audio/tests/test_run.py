"""`selfsup pretrain audio/<method>` end to end (in process) on a tiny keyword set: training, the probes with
their three baselines and two extra columns, evaluation of the checkpoint, and export (wav2vec 2.0 and HuBERT
into folders that `transformers` loads offline and that give our features)."""

import json
import shutil

import pytest
import torch

import ssl_core
from ssl_core.run import evaluate, pretrain
from ssl_core.testing.export_checks import assert_export_matches_run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"),
]

# 4 words x 6 voices, small probes, a few steps
TINY_DATA = [
    "data.words=4", "data.accents=2", "data.variants=3", "data.frame_utterances=12", "data.fewshot_episodes=4",
    "train.progress=false", "train.max_minutes=null", "train.batch_size=8", "probe.k=3",
]  # fmt: skip
SMALL_W2V = [
    "method.backbone.conv_dim=[16,16,16,16,16,16,16]", "method.backbone.hidden_size=32",
    "method.backbone.num_hidden_layers=1", "method.backbone.num_attention_heads=2",
    "method.backbone.intermediate_size=64", "method.backbone.num_conv_pos_embedding_groups=4",
]  # fmt: skip


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("audio-cache")


def run(tmp_path, cache, key, *overrides, steps=2):
    out = pretrain(
        key, out=tmp_path / "run", max_steps=steps, overrides=[*TINY_DATA, f"data.cache_dir={cache}", *overrides]
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == ["pretrained", "random_init", "raw_input", "mfcc_stats"]
    for name, row in metrics.items():
        assert all(0 <= row[k] <= 1 for k in ("knn_top1", "linear_top1")), (name, row)
    assert 0 <= metrics["raw_input"]["frame_linear"] <= 1  # the log-mel frames' baseline
    assert 0 <= metrics["pretrained"]["frame_linear"] <= 1
    return out, metrics


@pytest.mark.parametrize(("key", "hf_class"), [("audio/wav2vec2", "Wav2Vec2Model"), ("audio/hubert", "HubertModel")])
def test_wav2vec2_and_hubert_export_to_transformers(tmp_path, cache, key, hf_class):
    transformers = pytest.importorskip("transformers")
    out, metrics = run(tmp_path, cache, key, *SMALL_W2V)
    assert evaluate(out) == metrics  # the same checkpoint gives the same probes
    export = ssl_core.export_backbone(out, tmp_path / "export")
    assert_export_matches_run(out, export, n=3)
    model = getattr(transformers, hf_class).from_pretrained(export / "hf", local_files_only=True).eval()
    ours = ssl_core.load_backbone(export).eval()
    wave = torch.randn(2, 16000) * 0.1
    with torch.no_grad():
        torch.testing.assert_close(model(wave).last_hidden_state, ours.frames(wave), atol=1e-4, rtol=1e-4)


def test_byol_a_runs_and_exports(tmp_path, cache):
    out, _ = run(tmp_path, cache, "audio/byol_a", "method.backbone.channels=8")
    export = ssl_core.export_backbone(out, tmp_path / "export")
    assert_export_matches_run(out, export, n=3)
    assert not (export / "hf").exists()  # only wav2vec 2.0 / HuBERT backbones have a transformers format

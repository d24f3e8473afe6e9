"""``ssl_audio.export.save_pretrained``: the ``hf/`` folder loads offline in ``transformers`` and gives our frames."""

import dataclasses

import pytest
import torch
from torch import nn

from ssl_audio.export import HF_DIR, save_pretrained
from ssl_audio.models.wav2vec2 import Wav2Vec2BackboneConfig, build_wav2vec2

transformers = pytest.importorskip("transformers")

SMALL = Wav2Vec2BackboneConfig(
    conv_dim=[32] * 7, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
    num_conv_pos_embedding_groups=8,
)  # fmt: skip


@pytest.mark.parametrize(("model_type", "cls"), [("wav2vec2", "Wav2Vec2Model"), ("hubert", "HubertModel")])
def test_hugging_face_model_gives_our_frames(tmp_path, model_type, cls):
    torch.manual_seed(0)
    cfg = dataclasses.replace(SMALL, model_type=model_type).to_dict()
    ours = build_wav2vec2(cfg)
    with torch.no_grad():  # move every weight off its init so that a missed key shows
        for p in ours.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ours.eval()
    export_cfg = {"name": "wav2vec2", "config": cfg, "input": {"sample_rate": 16000, "num_samples": 16000}}
    hf_dir = save_pretrained(ours, export_cfg, tmp_path)
    assert hf_dir == tmp_path / HF_DIR
    model = getattr(transformers, cls).from_pretrained(hf_dir, local_files_only=True).eval()
    extractor = transformers.Wav2Vec2FeatureExtractor.from_pretrained(hf_dir, local_files_only=True)
    assert extractor.do_normalize is False and extractor.sampling_rate == 16000

    wave = torch.randn(2, 16000) * 0.1
    inputs = extractor(list(wave.numpy()), sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        theirs = model(inputs.input_values).last_hidden_state
        mine = ours.frames(wave)
    torch.testing.assert_close(theirs, mine, atol=1e-4, rtol=1e-4)


def test_other_backbones_are_left_alone(tmp_path):
    assert save_pretrained(nn.Linear(2, 2), {"name": "other"}, tmp_path) is None
    assert not (tmp_path / HF_DIR).exists()

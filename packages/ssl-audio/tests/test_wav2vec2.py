"""wav2vec 2.0: loss and gradients equal Hugging Face's Wav2Vec2ForPreTraining on shared weights, masks with the
paper's statistics, distractors drawn as fairseq does, and the method trains."""

import dataclasses

import numpy as np
import pytest
import torch

from ssl_audio.export import pretraining_twin
from ssl_audio.info import AudioInfo
from ssl_audio.methods.common import sample_negatives
from ssl_audio.methods.wav2vec2 import Wav2Vec2, Wav2Vec2Config
from ssl_audio.models.wav2vec2 import Wav2Vec2BackboneConfig, build_wav2vec2
from ssl_core.masking import time_mask
from ssl_core.testing import begin_step, fit_fixed_batch, without_gradient

transformers = pytest.importorskip("transformers")
from transformers.models.wav2vec2.modeling_wav2vec2 import (  # noqa: E402
    _compute_mask_indices,
    _sample_negative_indices,
)

INFO = AudioInfo(16000, 8000)  # 0.5 s clips keep the tests fast
TINY = Wav2Vec2BackboneConfig(
    conv_dim=[32] * 7,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=128,
    num_conv_pos_embedding_groups=8,
)


def tiny_config(dropout: float = 0.1, **kw) -> Wav2Vec2Config:
    bb = dataclasses.replace(
        TINY, hidden_dropout=dropout, attention_dropout=dropout, activation_dropout=0.0, feat_proj_dropout=dropout
    )
    base = {
        "num_codevectors_per_group": 16,
        "codevector_dim": 32,
        "proj_codevector_dim": 32,
        "num_negatives": 10,
        "mask_length": 3,
    }
    return Wav2Vec2Config(backbone=bb, **{**base, **kw})


@pytest.mark.parametrize("training", [True, False])
def test_loss_and_gradients_equal_hugging_face(training):
    torch.manual_seed(0)
    method = Wav2Vec2(tiny_config(dropout=0.0), INFO)
    hf = pretraining_twin(method)
    method.train(training), hf.train(training)
    tau = 1.3
    begin_step(method, gumbel_temperature=tau)
    hf.set_gumbel_temperature(tau)

    wave = torch.randn(3, INFO.num_samples) * 0.1
    frames = TINY.num_frames(INFO.num_samples)
    np.random.seed(0)
    mask = _compute_mask_indices((3, frames), mask_prob=0.65, mask_length=3, min_masks=2)
    negs = _sample_negative_indices((3, frames), 10, mask)
    mask_t = torch.as_tensor(mask)
    negs_t = torch.as_tensor(negs, dtype=torch.long)
    ours_negs = negs_t - (torch.arange(3) * frames)[:, None, None]  # HF's flat indices -> frames of the clip

    torch.manual_seed(1)  # the same Gumbel noise for both (dropouts are off)
    ours = method(wave, mask=mask_t, negatives=ours_negs)
    torch.manual_seed(1)
    theirs = hf(wave, mask_time_indices=mask_t, sampled_negative_indices=negs_t)
    n = mask_t.sum()
    torch.testing.assert_close(ours.loss * n, theirs.loss, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours.logs["perplexity"], theirs.codevector_perplexity, rtol=1e-5, atol=1e-5)

    (ours.loss * n).backward()
    theirs.loss.backward()
    hf_params = dict(hf.named_parameters())
    checked = 0
    for k, p in method.named_parameters():
        q = hf_params[("wav2vec2." + k[9:]) if k.startswith("backbone.") else k]
        if p.grad is None:
            assert q.grad is None or not q.grad.any(), k
            continue
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-4, msg=k)
        checked += 1
    assert checked >= len(hf_params) - (0 if training else 2)  # eval: argmax codes give weight_proj no gradient


def test_time_mask_statistics_match_hugging_face():
    # the paper's setting: 400 frames, spans of 10, mask_prob 0.65 (share before overlap) -> about 49% masked
    torch.manual_seed(0)
    np.random.seed(0)
    ours = time_mask(256, 400, mask_prob=0.65, mask_length=10, min_masks=2).float().mean().item()
    theirs = np.mean([_compute_mask_indices((16, 400), 0.65, 10, min_masks=2).mean() for _ in range(16)])
    assert abs(ours - theirs) < 0.01, (ours, theirs)
    assert 0.46 < ours < 0.52, ours


def test_negatives_are_other_masked_frames_of_the_same_clip():
    torch.manual_seed(0)
    mask = time_mask(8, 49, mask_prob=0.65, mask_length=5, min_masks=2)
    neg = sample_negatives(mask, 100)
    assert neg.shape == (8, 49, 100)
    b, t = mask.nonzero(as_tuple=True)
    n = neg[b, t]  # (M, K)
    assert mask[b[:, None].expand_as(n), n].all(), "distractors are masked frames"
    assert (n != t[:, None]).all(), "never the frame itself"
    # uniform over the other masked frames: every one of them is drawn about equally often
    counts = torch.bincount(n[b == 0].flatten(), minlength=49)[mask[0]].float()
    assert counts.min() > 0.5 * counts.mean(), counts


def test_gumbel_temperature_schedule():
    method = Wav2Vec2(tiny_config(), INFO)
    tau = method.schedules(100, 10)["gumbel_temperature"]
    assert tau[0] == pytest.approx(2.0) and tau[-1] == pytest.approx(0.5) and (np.diff(tau) < 0).all()


def test_gradients_reach_the_backbone_and_loss_falls():
    torch.manual_seed(0)
    method = Wav2Vec2(tiny_config(), INFO)
    batch = torch.randn(6, INFO.num_samples) * 0.1
    begin_step(method)
    out = method(batch)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    missing = without_gradient(method.backbone)
    assert not missing, missing
    method.eval()
    emb = method.embed(batch[:2])
    assert emb.shape == (2, method.backbone_spec().embed_dim) and torch.isfinite(emb).all()
    assert method.backbone.frames(batch[:2]).shape == (2, TINY.num_frames(INFO.num_samples), 64)
    method.train()
    losses = fit_fixed_batch(method, batch, 30, lr=2e-3, reseed=2)
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4, losses


def test_backbone_rebuilds_from_its_spec():
    method = Wav2Vec2(tiny_config(), INFO)
    spec = method.backbone_spec()
    rebuilt = build_wav2vec2(spec.config)
    rebuilt.load_state_dict(method.backbone.state_dict(), strict=True)
    assert spec.name == "wav2vec2" and rebuilt.frame_rate == 50.0

"""HuBERT: k-means targets, the masked-prediction loss against a per-frame reference, training on a fixed batch,
and the second iteration (clustering a trained backbone's layer)."""

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from ssl_audio.info import AudioInfo
from ssl_audio.methods.hubert import HuBERT, HuBERTConfig, cosine_logits, hubert_loss
from ssl_audio.models.wav2vec2 import Wav2Vec2BackboneConfig, build_wav2vec2
from ssl_audio.pretext.targets import KMeansTargets, mfcc_features, pool_frames
from ssl_core.testing import fit_fixed_batch, without_gradient

INFO = AudioInfo(num_samples=8000)  # half-second clips keep the tests fast
TINY = Wav2Vec2BackboneConfig(
    conv_dim=[32] * 7,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    num_conv_pos_embedding_groups=4,
    hidden_dropout=0.0,
    attention_dropout=0.0,
    feat_proj_dropout=0.0,
)


def tiny_config(**kw) -> HuBERTConfig:
    return HuBERTConfig(backbone=TINY, num_clusters=8, final_dim=16, **kw)


def waves(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(INFO.num_samples) / INFO.sample_rate
    freqs = 200 + 1800 * torch.rand(n, 1, generator=g)
    return 0.3 * torch.sin(2 * torch.pi * freqs * t) + 0.05 * torch.randn(n, INFO.num_samples, generator=g)


def test_kmeans_labels_equal_sklearn_predict():
    torch.manual_seed(0)
    feats = torch.cat([torch.randn(200, 5) + 4 * torch.randn(1, 5) for _ in range(6)])
    targets = KMeansTargets(6, 5, seed=0).fit(feats)
    assert targets.fitted
    labels = targets(feats.view(4, 300, 5))
    expected = targets.kmeans_.predict(targets.standardize(feats).numpy())
    assert labels.shape == (4, 300)
    assert torch.equal(labels.flatten(), torch.as_tensor(expected, dtype=torch.long))
    # the buffers carry the fit: a fresh module loaded from the state dict labels the same
    copy = KMeansTargets(6, 5)
    copy.load_state_dict(targets.state_dict())
    assert copy.fitted and torch.equal(copy(feats), labels.flatten())


def test_mfcc_features_are_pooled_onto_backbone_frames():
    w = waves(2)
    feats = mfcc_features(w, 24)
    assert feats.shape == (2, 24, 39)
    x = torch.arange(12.0).view(1, 6, 2)
    torch.testing.assert_close(pool_frames(x, 3), x.view(1, 3, 2, 2).mean(2))


def test_hubert_loss_equals_per_frame_reference():
    torch.manual_seed(0)
    b, f, k, e, tau = 3, 7, 5, 4, 0.1
    proj = torch.randn(b, f, e, requires_grad=True)
    embs = torch.randn(k, e, requires_grad=True)
    labels = torch.randint(k, (b, f))
    mask = torch.rand(b, f) < 0.5
    mask[0, 0], mask[0, 1] = True, False
    for w in (0.0, 0.3):
        loss, _, _ = hubert_loss(cosine_logits(proj, embs, tau), labels, mask, w)
        g_proj, g_embs = torch.autograd.grad(loss, (proj, embs))
        # naive: one frame at a time, cosine by hand
        terms = {True: [], False: []}
        for i in range(b):
            for t in range(f):
                sims = torch.stack([proj[i, t] @ embs[c] / (proj[i, t].norm() * embs[c].norm()) for c in range(k)])
                terms[bool(mask[i, t])].append(-torch.log_softmax(sims / tau, 0)[labels[i, t]])
        ref = (1 - w) * torch.stack(terms[True]).mean() + w * torch.stack(terms[False]).mean()
        r_proj, r_embs = torch.autograd.grad(ref, (proj, embs))
        torch.testing.assert_close(loss, ref)
        torch.testing.assert_close(g_proj, r_proj)
        torch.testing.assert_close(g_embs, r_embs)


def test_step_gradients_embed_and_fixed_batch_fit():
    torch.manual_seed(0)
    method = HuBERT(tiny_config(), INFO)
    assert method.backbone_spec().config["model_type"] == "hubert"
    batch = waves(8)
    out = method(batch)
    assert method.targets.fitted, "the first batch fits the k-means centroids"
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    missing = without_gradient(method.backbone, nonzero=False)
    assert not missing, f"no gradient: {missing}"
    method.eval()
    emb = method.embed(batch[:3])
    assert emb.shape == (3, method.backbone_spec().embed_dim) and torch.isfinite(emb).all()
    assert method.backbone.frames(batch[:3]).shape[1] == method.backbone.config.num_frames(INFO.num_samples)
    method.train()
    method.zero_grad()
    losses = fit_fixed_batch(method, batch, 25, lr=3e-3, reseed=2)
    assert sum(losses[-4:]) / 4 < 0.8 * sum(losses[:4]) / 4, losses


def _fake_run(tmp_path, backbone, config):
    """A run folder as `selfsup pretrain` leaves it, reduced to what the target loader reads."""
    (tmp_path / "backbone.json").write_text(
        json.dumps({"modality": "audio", "recipe": "audio/hubert", "name": "wav2vec2", "config": config.to_dict()})
    )
    ckpt = tmp_path / "checkpoints" / "step_00000003"
    ckpt.mkdir(parents=True)
    save_file({f"backbone.{k}": v.contiguous() for k, v in backbone.state_dict().items()}, ckpt / "model.safetensors")
    return tmp_path


def test_second_iteration_clusters_a_trained_layer(tmp_path, monkeypatch):
    from ssl_core.registry import get_modality

    monkeypatch.setitem(get_modality("audio").backbones, "wav2vec2", build_wav2vec2)
    torch.manual_seed(1)
    first = build_wav2vec2(TINY.to_dict())
    run = _fake_run(tmp_path, first, TINY)
    torch.manual_seed(0)
    method = HuBERT(tiny_config(target_run=str(run), target_layer=1), INFO)
    teacher = method.target_backbone
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    for a, b in zip(teacher.state_dict().values(), first.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    batch = waves(6)
    out = method(batch)
    assert method.targets.centroids.shape == (8, TINY.hidden_size)
    # the labels are the nearest centroids of the first model's layer-1 frames
    first.eval()
    with torch.no_grad():
        hidden_in, _ = first.project(first.extract_features(batch))
        layer1 = first.encode(hidden_in, output_hidden_states=True)[1][1]
    torch.testing.assert_close(method.labels(batch, layer1.shape[1]), method.targets(layer1))
    out.loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    method.train()
    assert not teacher.training, "the frozen target stays in eval mode"
    with pytest.raises(Exception, match="out of range"):
        HuBERT(tiny_config(target_run=str(run), target_layer=9), INFO)(batch)


def test_cosine_logits_match_functional():
    p, e = torch.randn(2, 3, 4), torch.randn(5, 4)
    ref = F.cosine_similarity(p[..., None, :], e, dim=-1) / 0.1
    torch.testing.assert_close(cosine_logits(p, e, 0.1), ref)

"""w2v-BERT: the backbone protocol, the contrastive and masked-prediction losses against per-frame references,
gradients into every backbone parameter, and a falling loss on a fixed batch."""

import math

import torch
import torch.nn.functional as F
from safetensors.torch import save_model

from ssl_audio.info import AudioInfo
from ssl_audio.methods.common import contrastive_logits, contrastive_loss
from ssl_audio.methods.w2v_bert import W2vBERT, W2vBERTConfig
from ssl_audio.models.conformer import ConformerBackboneConfig, build_w2v_bert
from ssl_core.losses import masked_cross_entropy
from ssl_core.testing import begin_step, fit_fixed_batch, without_gradient

INFO = AudioInfo(num_samples=8000)
TINY = ConformerBackboneConfig(
    n_mels=32, conv_channels=8, hidden_size=32, num_heads=2, ffn_dim=64, conv_kernel=5, dropout=0.0
)


def tiny_config(**kw) -> W2vBERTConfig:
    return W2vBERTConfig(backbone=TINY, num_vars=16, codevector_dim=16, final_dim=16, num_negatives=5, **kw)


def waves(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(INFO.num_samples) / INFO.sample_rate
    freqs = 200 + 1800 * torch.rand(n, 1, generator=g)
    return 0.3 * torch.sin(2 * torch.pi * freqs * t) + 0.05 * torch.randn(n, INFO.num_samples, generator=g)


def test_backbone_protocol(tmp_path):
    backbone = build_w2v_bert(TINY.to_dict())
    save_model(backbone, str(tmp_path / "b.safetensors"))  # checkpointable (no buffer is a view)
    w = waves(3)
    frames = backbone.frames(w)
    assert backbone.frame_rate == 25.0 and backbone.embed_dim == 32
    assert frames.shape == (3, 13, 32)  # 51 log-mel frames -> 26 -> 13
    backbone.eval()
    torch.testing.assert_close(backbone(w), backbone.frames(w).mean(1))
    assert backbone.extract_features(w).shape == (3, 13, TINY.feature_dim)


def test_contrastive_loss_equals_per_frame_reference():
    # the contrastive task w2v-BERT shares with wav2vec 2.0 (ssl_audio.methods.common), on one clip of 6 frames
    torch.manual_seed(0)
    n, k, e, kappa = 6, 4, 5, 0.1
    ctx = torch.randn(1, n, e, requires_grad=True)
    q = torch.randn(1, n, e)
    q[0, 3] = q[0, 2]  # a distractor equal to the positive is left out
    q.requires_grad_(True)
    mask = torch.ones(1, n, dtype=torch.bool)
    neg = torch.randint(n, (1, n, k))
    neg[0, 2, 0] = 3
    loss = contrastive_loss(contrastive_logits(ctx, q, mask, neg, kappa))
    g = torch.autograd.grad(loss, (ctx, q))
    terms = []
    for i in range(n):
        cands = [q[0, i]] + [q[0, j] for j in neg[0, i].tolist() if not torch.equal(q[0, j], q[0, i])]
        sims = torch.stack([F.cosine_similarity(ctx[0, i], c, dim=0) for c in cands]) / kappa
        terms.append(-torch.log_softmax(sims, 0)[0])
    ref = torch.stack(terms).mean()
    r = torch.autograd.grad(ref, (ctx, q))
    torch.testing.assert_close(loss, ref)
    for a, b in zip(g, r, strict=True):
        torch.testing.assert_close(a, b)


def test_masked_prediction_loss_equals_per_frame_reference():
    torch.manual_seed(0)
    method = W2vBERT(tiny_config(num_groups=2), INFO)
    hidden = torch.randn(2, 5, 32, requires_grad=True)
    ids = torch.randint(16, (2, 5, 2))
    mask = torch.rand(2, 5) < 0.5
    mask[0, 0] = True
    logits = method.mlm_logits(hidden)
    loss = masked_cross_entropy(logits, ids, mask[..., None].expand_as(ids))
    g = torch.autograd.grad(loss, hidden)[0]
    terms = []
    w, bias = method.mlm_head.weight.view(2, 16, 32), method.mlm_head.bias.view(2, 16)
    for b in range(2):
        for t in range(5):
            if mask[b, t]:
                for grp in range(2):
                    z = w[grp] @ hidden[b, t] + bias[grp]
                    terms.append(-torch.log_softmax(z, 0)[ids[b, t, grp]])
    ref = torch.stack(terms).mean()
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(g, torch.autograd.grad(ref, hidden)[0])
    # the targets are the quantizer's noise-free codes
    feats = torch.randn(2, 5, TINY.feature_dim)
    q = method.quantizer
    expect = q.weight_proj(feats).view(2, 5, 2, 16).argmax(-1)
    assert torch.equal(method.token_ids(feats), expect)


def test_step_gradients_schedule_and_fixed_batch_fit():
    torch.manual_seed(0)
    method = W2vBERT(tiny_config(), INFO)
    temps = method.schedules(10, 5)["gumbel_temp"]
    assert temps[0] == 2.0 and abs(temps[-1] - 0.5) < 1e-9 and (temps[1:] < temps[:-1]).all()
    batch = waves(8)
    begin_step(method, 0, 10)
    out = method(batch)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert {"loss_w", "loss_d", "loss_m", "perplexity"} <= out.logs.keys()
    out.loss.backward()
    missing = without_gradient(method.backbone, nonzero=False)
    assert not missing, f"no gradient: {missing}"
    assert method.quantizer.weight_proj.weight.grad is not None
    method.eval()
    emb = method.embed(batch[:3])
    assert emb.shape == (3, method.backbone_spec().embed_dim) and torch.isfinite(emb).all()
    method.train()
    method.zero_grad()
    losses = fit_fixed_batch(method, batch, 30, lr=3e-3, reseed=2)
    assert sum(losses[-4:]) / 4 < 0.8 * sum(losses[:4]) / 4, losses


def test_diversity_perplexity_is_fairseqs_and_keeps_finite_gradients():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 2, 16)
    mask = torch.rand(2, 6) < 0.6
    mask[0, 0] = True
    perplexity = W2vBERT(tiny_config(), INFO).quantizer.perplexity
    probs = logits.softmax(-1)[mask]  # (N, G, V): the masked frames
    marginal = probs.mean(0)
    ref = sum(math.exp(-sum(p * math.log(p + 1e-7) for p in marginal[g].tolist())) for g in range(2))
    torch.testing.assert_close(
        perplexity(logits.softmax(-1).flatten(0, 1), mask), torch.tensor(ref), atol=1e-4, rtol=1e-4
    )
    peaked = (200 * torch.randn(2, 6, 2, 16)).requires_grad_(True)  # codes whose mean probability underflows
    (g,) = torch.autograd.grad(perplexity(peaked.softmax(-1).flatten(0, 1), mask), peaked)
    assert torch.isfinite(g).all()

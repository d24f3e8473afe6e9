"""DropPos: the smoothed position targets (by hand on a 3x3 grid), the loss and the attentive weights against naive
per-patch loops (values and gradients), dropped positions carrying no position, the pretext, the sigma schedule,
gradients everywhere, a falling loss and clear configuration errors."""

import math
import pickle

import pytest
import torch
import torch.nn.functional as F

from ssl_core.errors import ConfigError
from ssl_core.testing import begin_step, fit_fixed_batch, pretext_batch, without_gradient
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.droppos import (
    DropPos,
    DropPosConfig,
    attentive_weights,
    droppos_loss,
    position_smoothing,
)
from ssl_vision.models import ViTConfig
from ssl_vision.models.vit import ViT

INFO = ImageInfo(channels=1, image_size=16, mean=[0.5], std=[0.5])
# the TINY configuration: one encoder block, 16 patches of a 16x16 image, 4 visible, 3 of them without position
TINY = dict(backbone=ViTConfig(depth=1, patch_size=4), decoder_dim=16, decoder_depth=1, decoder_heads=2)


def images(n=8, size=16, seed=0):
    return torch.randint(0, 256, (n, 1, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_position_smoothing_by_hand_on_a_3x3_grid():
    s = position_smoothing(3, 1.0)
    assert s.shape == (9, 9)
    torch.testing.assert_close(s.sum(1), torch.ones(9))
    e = math.exp
    # the centre (1, 1): itself, 4 neighbours at distance 1, 4 diagonal ones at distance sqrt(2)
    z = 1 + 4 * e(-1) + 4 * e(-2)
    want = torch.tensor([e(-2), e(-1), e(-2), e(-1), 1, e(-1), e(-2), e(-1), e(-2)]) / z
    torch.testing.assert_close(s[4], want.float())
    # the corner (0, 0): squared distances 0 1 4 / 1 2 5 / 4 5 8
    d2 = torch.tensor([0, 1, 4, 1, 2, 5, 4, 5, 8], dtype=torch.float64)
    corner = torch.exp(-d2)
    torch.testing.assert_close(s[0], (corner / corner.sum()).float())
    # a wider sigma spreads the same shape: exp(-d^2 / sigma^2)
    wide = torch.exp(-d2 / 4)
    torch.testing.assert_close(position_smoothing(3, 2.0)[0], (wide / wide.sum()).float())
    # sigma -> 0 is one-hot, sigma = 0 exactly the identity
    torch.testing.assert_close(position_smoothing(3, 1e-3), torch.eye(9))
    assert torch.equal(position_smoothing(3, 0.0), torch.eye(9))
    assert torch.equal(position_smoothing(8, 0.7).argmax(1), torch.arange(64))  # the true position weighs most


def naive_loss(logits, positions, dropped, smoothing, weights):
    """Per-sample, per-patch loop of the soft cross-entropy on dropped positions."""
    total, norm = 0.0, 0.0
    b, k, n = logits.shape
    for i in range(b):
        for j in range(k):
            if not dropped[i, j]:
                continue
            w = 1.0 if weights is None else weights[i, j]
            logp = logits[i, j] - torch.logsumexp(logits[i, j], 0)
            ce = -sum(smoothing[positions[i, j], c] * logp[c] for c in range(n))
            total = total + w * ce
            norm = norm + w
    return total / norm


@pytest.mark.parametrize("weighted", [False, True])
def test_loss_matches_a_per_patch_loop(weighted):
    g = torch.Generator().manual_seed(0)
    b, k, n = 3, 4, 9
    logits = torch.randn(b, k, n, generator=g, dtype=torch.float64, requires_grad=True)
    positions = torch.stack([torch.randperm(n, generator=g)[:k] for _ in range(b)])
    dropped = torch.rand(b, k, generator=g) < 0.6
    dropped[:, 0] = True
    smoothing = position_smoothing(3, 0.8).double()
    weights = torch.rand(b, k, generator=g, dtype=torch.float64) if weighted else None
    loss, acc = droppos_loss(logits, positions, dropped, smoothing, weights)
    ref = naive_loss(logits, positions, dropped, smoothing, weights)
    torch.testing.assert_close(loss, ref)
    (g1,) = torch.autograd.grad(loss, logits)
    (g2,) = torch.autograd.grad(ref, logits)
    torch.testing.assert_close(g1, g2)
    assert not g1[~dropped].any()  # tokens that kept their position are not trained to find it
    hits = [(logits[i, j].argmax() == positions[i, j]).item() for i in range(b) for j in range(k) if dropped[i, j]]
    assert acc.item() == pytest.approx(sum(hits) / len(hits))


def test_loss_with_sigma_zero_is_cross_entropy():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 5, 16, generator=g)
    positions = torch.stack([torch.randperm(16, generator=g)[:5] for _ in range(2)])
    dropped = torch.ones(2, 5, dtype=torch.bool)
    loss, _ = droppos_loss(logits, positions, dropped, position_smoothing(4, 0.0))
    torch.testing.assert_close(loss, F.cross_entropy(logits.reshape(-1, 16), positions.reshape(-1)))


def test_attentive_weights_match_a_loop():
    g = torch.Generator().manual_seed(2)
    feats = torch.randn(2, 1 + 9, 6, generator=g)
    ids_keep = torch.stack([torch.randperm(9, generator=g)[:4] for _ in range(2)])
    got = attentive_weights(feats, ids_keep, 0.1)
    for i in range(2):
        cls = feats[i, 0]
        sims = torch.stack([cls @ p / (cls.norm() * p.norm()) for p in feats[i, 1:]])
        attn = torch.exp(sims / 0.1) / torch.exp(sims / 0.1).sum()
        kept = attn[ids_keep[i]]
        torch.testing.assert_close(got[i], kept / kept.sum())
    torch.testing.assert_close(got.sum(1), torch.ones(2))


def test_dropped_positions_carry_no_position():
    torch.manual_seed(0)
    method = DropPos(DropPosConfig(**TINY), INFO).eval()
    x = torch.randn(1, 1, 16, 16)
    ids_keep = torch.tensor([[3, 7, 10, 12]])
    dropped = torch.tensor([[True, False, True, False]])
    out = method.forward_encoder(x, ids_keep, dropped)[:, 1:]  # (1, 4, D)
    # swapping the two dropped tokens only swaps their outputs: nothing tells them apart but their pixels
    swapped = method.forward_encoder(x, ids_keep[:, [2, 1, 0, 3]], dropped)[:, 1:]
    torch.testing.assert_close(swapped, out[:, [2, 1, 0, 3]], atol=1e-5, rtol=1e-5)
    # a token that keeps its position sees it: moving it elsewhere changes its output
    moved = method.forward_encoder(x, torch.tensor([[3, 5, 10, 12]]), dropped)[:, 1:]
    assert not torch.allclose(moved[:, 3], out[:, 3], atol=1e-4)
    # no drop at all: the backbone's own position embeddings, as MAE's encoder
    none = torch.zeros_like(dropped)
    tokens = method.backbone.patch_embed(x) + method.backbone.pos_embed
    want = method.backbone.encode(tokens[:, ids_keep[0]])
    torch.testing.assert_close(method.forward_encoder(x, ids_keep, none), want)


def test_pretext_draws_the_position_drop_among_visible_patches():
    torch.manual_seed(0)
    method = DropPos(DropPosConfig(**TINY), INFO)
    batch = pretext_batch(method, list(images(5)))
    assert batch["image"].shape == (5, 1, 16, 16) and batch["image"].dtype == torch.float32
    assert batch["ids_keep"].shape == (5, 4) and batch["pos_dropped"].shape == (5, 4)
    assert (batch["pos_dropped"].sum(1) == 3).all()  # 4 visible, int(4 * 0.25) = 1 keeps its position
    assert not batch["mask"].gather(1, batch["ids_keep"]).any()
    assert pickle.loads(pickle.dumps(method.pretext())).pos_mask_ratio == 0.75  # runs in data-loader workers


def test_sigma_schedule_and_logs():
    method = DropPos(DropPosConfig(**TINY), INFO)
    sigma = method.schedules(10, 5)["sigma"]
    assert sigma[0] == 1.0 and sigma[5] == pytest.approx(0.5) and sigma[-1] == pytest.approx(0.1)
    flat = DropPos(DropPosConfig(**TINY, sigma=2.0, sigma_decay=False), INFO)
    assert (flat.schedules(7, 7)["sigma"] == 2.0).all()
    torch.manual_seed(1)
    batch = pretext_batch(method, list(images(4)))
    begin_step(method, 5, 10, 5)
    out = method(batch)
    assert out.logs["sigma"] == pytest.approx(0.5)
    assert 0.0 <= float(out.logs["pos_acc"]) <= 1.0


@pytest.mark.parametrize("attentive", [True, False])
def test_gradients_reach_every_parameter(attentive):
    torch.manual_seed(0)
    method = DropPos(DropPosConfig(**TINY, attentive=attentive), INFO)
    batch = pretext_batch(method, list(images(6)))
    begin_step(method)
    method(batch).loss.backward()
    assert without_gradient(method) == []


def test_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    method = DropPos(DropPosConfig(**TINY, sigma_decay=False), INFO)
    batch = pretext_batch(method, list(images(16)))
    losses = fit_fixed_batch(method, batch, steps=30, lr=3e-3)
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5


def test_other_image_sizes_and_the_exported_backbone():
    torch.manual_seed(0)
    info = ImageInfo(channels=1, image_size=28, mean=[0.5], std=[0.5])
    method = DropPos(DropPosConfig(**{**TINY, "backbone": ViTConfig(depth=1, patch_size=7)}), info)
    batch = pretext_batch(method, list(images(3, size=28)))
    begin_step(method)
    assert torch.isfinite(method(batch).loss)
    assert type(method.backbone) is ViT
    spec = method.backbone_spec()
    assert spec.name == "vit" and spec.config["patch_size"] == 7
    x = torch.randn(2, 1, 28, 28)
    method.eval()
    torch.testing.assert_close(method.embed(x), method.backbone(x))


def test_bad_configurations_are_refused():
    with pytest.raises(ConfigError, match="pos_mask_ratio"):
        DropPosConfig(pos_mask_ratio=1.0)
    with pytest.raises(ConfigError, match="sigma"):
        DropPosConfig(sigma=-1)
    with pytest.raises(ConfigError, match="at least one"):
        DropPos(DropPosConfig(**TINY, pos_mask_ratio=0.0), INFO)  # no position to find
    with pytest.raises(ConfigError, match="decoder_heads"):
        DropPosConfig(decoder_dim=10, decoder_heads=4)

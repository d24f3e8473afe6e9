"""Volume Fusion (MIS-FM): the fusion identity, the label map against a naive PyMIC-style loop, the pretext and its
pairing collate, and the method (loss against a naive reference and MONAI's DiceLoss, gradients, falling loss)."""

import numpy as np
import pytest
import torch

from ssl_core.errors import ConfigError
from ssl_core.testing import fit_fixed_batch, pretext_batch, without_gradient
from ssl_medical.info import VolumeInfo
from ssl_medical.methods.volume_fusion import (
    VolumeFusion,
    VolumeFusionConfig,
    fusion_loss,
    soft_dice_loss,
)
from ssl_medical.models.monai_nets import build_monai_backbone
from ssl_medical.pretext.volume_fusion import (
    ALPHA,
    FusionPretext,
    blend,
    block_range,
    fuse,
    fusion_alphas,
    fusion_label,
    gamma_correction,
)


def volumes(shape=(1, 24, 20, 16), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g), torch.rand(shape, generator=g)


def test_alpha_is_the_mis_fm_set():
    assert ALPHA == (0.0, 0.25, 0.5, 0.75, 1.0)
    torch.testing.assert_close(fusion_alphas(3), torch.tensor([0.0, 0.5, 1.0]))
    with pytest.raises(ConfigError, match="at least 2"):
        fusion_alphas(1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fuse_identity_holds_voxel_by_voxel(seed):
    fg, bg = volumes(seed=seed)
    fused, label = fuse(fg, bg, torch.Generator().manual_seed(seed))
    assert fused.shape == fg.shape and fused.dtype == fg.dtype
    assert label.shape == fg.shape[1:] and label.dtype == torch.int64
    assert 0 <= int(label.min()) and int(label.max()) <= 4
    # naive: every class k at its voxels, in float32 as the identity is written
    expected = torch.empty_like(fg)
    for k in range(5):
        m = (label == k)[None]
        a = torch.tensor(k / 4, dtype=torch.float32)
        expected[m] = a * fg[m] + (1 - a) * bg[m]
    assert torch.equal(fused, expected)
    assert torch.equal(fused[(label == 0)[None]], bg[(label == 0)[None]])  # class 0: pure background
    assert torch.equal(fused[(label == 4)[None]], fg[(label == 4)[None]])  # class K: pure foreground
    # float64 check of the identity itself
    alpha = torch.tensor(ALPHA, dtype=torch.float64)[label][None]
    torch.testing.assert_close(fused.double(), alpha * fg.double() + (1 - alpha) * bg.double())


def test_fuse_is_deterministic_under_a_generator_and_uses_every_class():
    fg, bg = volumes((1, 32, 32, 32))
    a = fuse(fg, bg, torch.Generator().manual_seed(5))
    b = fuse(fg, bg, torch.Generator().manual_seed(5))
    c = fuse(fg, bg, torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    torch.manual_seed(5)
    d = fuse(fg, bg)  # the global generator
    torch.manual_seed(5)
    assert torch.equal(d[1], fuse(fg, bg)[1])
    seen = set()
    for s in range(20):
        seen |= set(fuse(fg, bg, torch.Generator().manual_seed(s))[1].unique().tolist())
    assert seen == {0, 1, 2, 3, 4}


def naive_label(shape, generator, num_classes, ratio, bmin, bmax):
    """PyMIC's VolumeFusion mask, as loops, from the same draws in the same order."""
    sizes = [int(torch.randint(lo, hi + 1, (1,), generator=generator)) for lo, hi in zip(bmin, bmax, strict=True)]
    offsets = [int(torch.randint(0, s % b + 1, (1,), generator=generator)) for s, b in zip(shape, sizes, strict=True)]
    dn, hn, wn = [s // b for s, b in zip(shape, sizes, strict=True)]
    n = dn * hn * wn
    order = torch.randperm(n, generator=generator).tolist()
    classes = torch.randint(1, num_classes, (n,), generator=generator).tolist()
    fg = {idx: classes[i] for i, idx in enumerate(order[: int(n * ratio)])}
    mask = np.zeros(shape, np.int64)
    for d in range(dn):
        for h in range(hn):
            for w in range(wn):
                idx = d * hn * wn + h * wn + w
                if idx in fg:
                    d0, h0, w0 = d * sizes[0] + offsets[0], h * sizes[1] + offsets[1], w * sizes[2] + offsets[2]
                    mask[d0 : d0 + sizes[0], h0 : h0 + sizes[1], w0 : w0 + sizes[2]] = fg[idx]
    return torch.from_numpy(mask), sizes, n


@pytest.mark.parametrize("seed", range(6))
def test_label_map_matches_a_naive_pymic_loop(seed):
    shape, bmin, bmax = (20, 17, 32), (2, 3, 2), (7, 5, 8)
    label = fusion_label(shape, torch.Generator().manual_seed(seed), 5, 0.7, bmin, bmax)
    ref, sizes, n = naive_label(shape, torch.Generator().manual_seed(seed), 5, 0.7, bmin, bmax)
    assert torch.equal(label, ref)
    # 70% of the grid's blocks are foreground (each a whole block of one class)
    fg_voxels = int((label > 0).sum())
    assert fg_voxels == int(n * 0.7) * sizes[0] * sizes[1] * sizes[2]


def test_block_range_scales_pymic_fractions_and_errors():
    assert block_range(32) == (2, 8) and block_range(64) == (4, 16) and block_range(128) == (8, 32)
    with pytest.raises(ConfigError, match="block fractions"):
        block_range(32, (0.5, 0.2))
    with pytest.raises(ConfigError, match="foreground_ratio"):
        fusion_label((8, 8, 8), foreground_ratio=1.5)
    with pytest.raises(ConfigError, match="block sides"):
        fusion_label((8, 8, 8), block_min=(1, 1, 1), block_max=(9, 2, 2))
    with pytest.raises(ValueError, match="label"):
        blend(*volumes((1, 4, 4, 4)), torch.zeros(4, 4, 5, dtype=torch.int64))
    with pytest.raises(ValueError, match="int64"):
        blend(*volumes((1, 4, 4, 4)), torch.full((4, 4, 4), 5))


def test_gamma_correction_against_numpy():
    x = torch.rand(1, 6, 6, 6) * 0.8 + 0.1
    v = x.numpy().astype(np.float64)
    lo, hi = v.min(), v.max()
    ref = ((v - lo) / (hi - lo)) ** 1.3 * (hi - lo) + lo
    np.testing.assert_allclose(gamma_correction(x, 1.3).numpy(), ref, rtol=1e-5, atol=1e-6)
    c = torch.full((1, 3, 3, 3), 0.5)
    assert torch.equal(gamma_correction(c, 2.0), c)


def test_pretext_and_pairing_collate():
    pre = FusionPretext()
    patches = [volumes((1, 16, 16, 16), seed=s)[0] for s in range(3)]
    torch.manual_seed(0)
    items = [pre(p) for p in patches]
    torch.manual_seed(0)
    again = [pre(p) for p in patches]
    for a, b in zip(items, again, strict=True):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    assert items[0]["image"].shape == (1, 16, 16, 16) and items[0]["label"].shape == (16, 16, 16)
    batch = pre.collate(items)
    assert batch["image"].shape == (3, 1, 16, 16, 16) and batch["label"].shape == (3, 16, 16, 16)
    for i in range(3):
        ref = blend(items[i]["image"], items[i - 1]["image"], items[i]["label"])
        if bool(items[i]["invert"]):
            ref = 1 - ref
        assert torch.equal(batch["image"][i], ref)
    with pytest.raises(ConfigError, match="batch_size"):
        pre.collate(items[:1])
    # no augmentation: the patch itself
    plain = FusionPretext(gamma=(1.0, 1.0), flip=False, invert_prob=0.0)
    assert torch.equal(plain(patches[0])["image"], patches[0])
    with pytest.raises(ValueError, match="C, D, H, W"):
        plain(patches[0][0])
    with pytest.raises(ConfigError, match="gamma"):
        FusionPretext(gamma=(1.5, 0.7))


# ------------------------------------------------------------------------------------------------------ the method
TINY = {"channels": (4, 8, 16), "strides": (2, 2), "num_res_units": 0}
INFO16 = VolumeInfo(patch_size=(16, 16, 16))


def tiny_method(**kw):
    return VolumeFusion(VolumeFusionConfig(**TINY, **kw), INFO16)


def smooth_patches(n=4, seed=0):
    """Patches with structure (smoothed noise), so that fused blocks differ from their background."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, 8, generator=g)
    x = torch.nn.functional.interpolate(x, size=(16, 16, 16), mode="trilinear", align_corners=False)
    return list(x)


def naive_dice_ce(logits, label):
    logits, c = logits.double(), logits.shape[1]
    prob = logits.softmax(1)
    dices = []
    for k in range(c):
        y = (label == k).double()
        p = prob[:, k]
        dices.append((2 * (p * y).sum() + 1e-5) / (p.sum() + y.sum() + 1e-5))
    dice = 1 - torch.stack(dices).mean()
    logp = logits.log_softmax(1)
    ce = -logp.gather(1, label[:, None]).mean()
    return dice, ce


def test_loss_against_a_naive_reference_and_monai():
    from monai.losses import DiceLoss

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 6, 7, 8, generator=g, requires_grad=True)
    label = torch.randint(0, 5, (2, 6, 7, 8), generator=g)
    loss, dice, ce = fusion_loss(logits, label, 0.5, 0.5)
    rdice, rce = naive_dice_ce(logits, label)
    torch.testing.assert_close(dice.double(), rdice, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ce.double(), rce, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loss.double(), 0.5 * rdice + 0.5 * rce, rtol=1e-5, atol=1e-6)
    (grad,) = torch.autograd.grad(loss, logits)
    (rgrad,) = torch.autograd.grad((0.5 * rdice + 0.5 * rce).float(), logits)
    torch.testing.assert_close(grad, rgrad, rtol=1e-4, atol=1e-7)
    peer = DiceLoss(softmax=True, to_onehot_y=True, batch=True, smooth_nr=1e-5, smooth_dr=1e-5)
    torch.testing.assert_close(soft_dice_loss(logits, label), peer(logits, label[:, None]), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ce, torch.nn.functional.cross_entropy(logits, label))
    with pytest.raises(ValueError, match="do not match"):
        fusion_loss(logits, label[:, :3])


def test_method_forward_gradients_and_spec():
    torch.manual_seed(0)
    m = tiny_method().train()
    batch = pretext_batch(m, smooth_patches())
    assert batch["image"].shape == (4, 1, 16, 16, 16) and batch["label"].shape == (4, 16, 16, 16)
    out = m(batch)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert {"dice_loss", "ce", "voxel_acc"} <= set(out.logs)
    out.loss.backward()
    missing = without_gradient(m.backbone)
    assert not missing, f"no gradient for {missing}"
    m.eval()
    x = torch.stack(smooth_patches(3))
    emb = m.embed(x)
    assert emb.shape == (3, m.backbone.embed_dim) == (3, 28)
    assert m.embed(torch.rand(2, 1, 32, 32, 32)).shape == (2, 28)  # the region probe's 32^3
    spec = m.backbone_spec()
    assert spec.name == "monai" and spec.embed_dim == 28 and spec.input["patch_size"] == [16, 16, 16]
    rebuilt = build_monai_backbone(spec.config)
    rebuilt.load_state_dict(m.backbone.state_dict(), strict=True)
    rebuilt.eval()
    torch.testing.assert_close(rebuilt(x), emb)
    assert rebuilt.net(x).shape == (3, 5, 16, 16, 16)


def test_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    m = tiny_method().train()
    batch = pretext_batch(m, smooth_patches())
    losses = fit_fixed_batch(m, batch, steps=30, lr=1e-2)
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses


def test_method_config_errors():
    with pytest.raises(ConfigError, match="multiple of the UNet"):
        VolumeFusion(VolumeFusionConfig(**TINY), VolumeInfo(patch_size=(18, 16, 16)))
    with pytest.raises(ConfigError, match="one stride fewer"):
        VolumeFusionConfig(channels=(4, 8), strides=(2, 2))
    with pytest.raises(ConfigError, match="dice_weight"):
        VolumeFusionConfig(dice_weight=0, ce_weight=0)

"""CroCo v1 / v2: cross-view completion on scene pairs."""

import dataclasses

import pytest
import torch

from ssl_core.errors import ConfigError
from ssl_core.testing import fit_fixed_batch, pretext_batch, without_gradient
from ssl_vision.data.images import ImageInfo
from ssl_vision.data.scenes import SceneConfig
from ssl_vision.methods.common import build_vit
from ssl_vision.methods.croco import CroCo, CroCoConfig, CroCoV2Config
from ssl_vision.models.rope import RoPEViTConfig, build_vit_rope
from ssl_vision.models.vit import ViTConfig, patchify

# the tests' tiny settings: one encoder block (MLP ratio 1), one narrow decoder block,
# 28x28 scenes (16 patches, 1 visible at the default 90% mask ratio)
TINY = dict(decoder_dim=16, decoder_depth=1, decoder_heads=2)
CONFIGS = {
    "v1": CroCoConfig(backbone=ViTConfig(patch_size=7, depth=1, mlp_ratio=1.0), **TINY),
    "v2": CroCoV2Config(backbone=RoPEViTConfig(patch_size=7, depth=1, mlp_ratio=1.0), **TINY),
}
MEAN, STD = 0.2, 0.3


def scene_info(size=28):
    return ImageInfo(
        channels=1, image_size=size, mean=[MEAN], std=[STD], num_classes=10, scenes=SceneConfig(canvas=size)
    )


def make(version, **kw):
    torch.manual_seed(0)
    return CroCo(dataclasses.replace(CONFIGS[version], **kw), scene_info())


def pairs(n, seed=0, size=28):
    g = torch.Generator().manual_seed(seed)
    return [
        {
            "image": torch.randint(0, 256, (1, size, size), generator=g, dtype=torch.uint8),
            "view2": torch.randint(0, 256, (1, size, size), generator=g, dtype=torch.uint8),
            "homography": torch.eye(3),
            "valid2": torch.ones(size, size, dtype=torch.bool),
        }
        for _ in range(n)
    ]


def batch_of(method, items, seed=0):
    torch.manual_seed(seed)
    return pretext_batch(method, items)


def naive_loss(pred, images, mask, p=7):
    """Per-sample, per-patch loop: mean over masked patches of the squared error to the patch normalised by its
    own mean and unbiased variance."""
    target = patchify(images, p)
    total, count = pred.new_zeros(()), 0
    for b in range(len(pred)):
        for i in range(pred.shape[1]):
            if mask[b, i]:
                t = target[b, i]
                t = (t - t.mean()) / (t.var() + 1e-6) ** 0.5
                total = total + ((pred[b, i] - t) ** 2).mean()
                count += 1
    return total / count


def test_masking_ratio_per_sample_and_visible_ids():
    m = make("v1", mask_ratio=0.75)
    b = batch_of(m, pairs(6))
    mask, keep, restore = b["mask"], b["ids_keep"], b["ids_restore"]
    assert mask.shape == (6, 16) and keep.shape == (6, 4) and restore.shape == (6, 16)
    assert (mask.sum(1) == 12).all()
    assert len({tuple(row.tolist()) for row in mask}) > 1  # drawn per sample
    for row_mask, row_keep, row_restore in zip(mask, keep, restore, strict=True):
        assert sorted(row_keep.tolist()) == torch.nonzero(~row_mask).flatten().tolist()
        shuffle = row_restore.argsort()
        assert shuffle[:4].tolist() == row_keep.tolist()  # "kept first" order that ids_restore undoes
    # the papers' 90% of 64 patches: 6 visible
    big = CroCo(CONFIGS["v1"], scene_info(56))
    assert batch_of(big, pairs(2, size=56))["ids_keep"].shape == (2, 6)


def test_views_are_normalised_swapped_and_flipped_together():
    items = pairs(3)
    plain = batch_of(make("v1", swap_prob=0.0, hflip=0.0), items)
    norm = lambda x: (x.float() / 255 - MEAN) / STD  # noqa: E731
    torch.testing.assert_close(plain["image"], norm(torch.stack([i["image"] for i in items])))
    torch.testing.assert_close(plain["view2"], norm(torch.stack([i["view2"] for i in items])))
    both = batch_of(make("v1", swap_prob=1.0, hflip=1.0), items)
    torch.testing.assert_close(both["image"], plain["view2"].flip(-1))
    torch.testing.assert_close(both["view2"], plain["image"].flip(-1))
    assert set(both) == {"image", "view2", "mask", "ids_keep", "ids_restore"}


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_prediction_uses_view2_and_only_the_visible_patches_of_view1(version):
    m = make(version, mask_ratio=0.5).eval()
    b = batch_of(m, pairs(4))
    with torch.no_grad():
        pred = m.predict(b)
        assert pred.shape == (4, 16, 49)
        other = dict(b, view2=torch.randn_like(b["view2"]))
        assert (m.predict(other) - pred).abs()[b["mask"]].amax() > 1e-4  # the masked patches depend on view 2
        # the removed pixels of view 1 never reach the prediction
        hidden = patchify(torch.randn_like(b["image"]), 7)
        mixed = torch.where(b["mask"][..., None], hidden, patchify(b["image"], 7))
        mixed = mixed.reshape(4, 4, 4, 7, 7).permute(0, 1, 3, 2, 4).reshape(4, 1, 28, 28)
        torch.testing.assert_close(m.predict(dict(b, image=mixed)), pred)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_loss_is_the_masked_normalised_mse_of_a_naive_loop(version):
    m = make(version)
    b = batch_of(m, pairs(4))
    loss = m(b).loss
    ref = naive_loss(m.predict(b), b["image"], b["mask"])
    torch.testing.assert_close(loss, ref)
    params = [m.decoder.pred.weight, m.backbone.patch_proj.weight]
    for g, g_ref in zip(torch.autograd.grad(loss, params), torch.autograd.grad(ref, params), strict=True):
        torch.testing.assert_close(g, g_ref)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_every_parameter_learns_and_loss_falls(version):
    m = make(version)
    b = batch_of(m, pairs(4))
    m(b).loss.backward()
    assert without_gradient(m) == []
    losses = fit_fixed_batch(m, b, steps=12, lr=3e-3)
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_export_and_embed(version):
    m = make(version).eval()
    spec = m.backbone_spec()
    assert spec.name == ("vit_rope" if version == "v2" else "vit") and spec.embed_dim == 192
    rebuilt = (build_vit_rope if version == "v2" else build_vit)(spec.config).eval()
    rebuilt.load_state_dict(m.backbone.state_dict())
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(rebuilt(x), m.embed(x))


def test_needs_scene_pairs_and_sane_settings():
    plain = ImageInfo(channels=1, image_size=28, mean=[MEAN], std=[STD], num_classes=10)
    with pytest.raises(ConfigError, match="scene_items=pair"):
        CroCo(CONFIGS["v1"], plain)
    pretext = make("v1").pretext()
    with pytest.raises(ConfigError, match="scene_items=pair"):
        pretext(torch.zeros(1, 28, 28, dtype=torch.uint8))  # the scenes' "image" items
    with pytest.raises(ConfigError, match="mask_ratio"):
        CroCoConfig(mask_ratio=1.0)
    with pytest.raises(ConfigError, match="decoder_heads"):
        CroCoConfig(decoder_dim=20, decoder_heads=3)

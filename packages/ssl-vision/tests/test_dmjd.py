"""DMJD: HOG targets against scikit-image, the loss against a naive per-token loop (values and gradients), the
views' masks against ssl_core.masking.disjoint_masks, view stacking, gradients and convergence."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.feature import _hoghistogram, hog
from skimage.feature._hog import _hog_channel_gradient

from ssl_core.errors import ConfigError
from ssl_core.masking import disjoint_masks
from ssl_core.testing import begin_step, fit_fixed_batch, pretext_batch, without_gradient
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.dmjd import DMJD, DMJDConfig, dmjd_loss, visible_distillation_loss
from ssl_vision.models import ViTConfig
from ssl_vision.models.vit import patchify
from ssl_vision.transforms.hog import hog_cell_histograms, hog_patch_targets

INFO = ImageInfo(channels=1, image_size=16, mean=[0.3], std=[0.4])
# the tiny setting: one ViT-tiny block on 16x16 images (4-pixel patches, 16 of them), a one-block 16-d decoder
TINY = dict(backbone=ViTConfig(depth=1), decoder_dim=16, decoder_depth=1, decoder_heads=2)


def tiny(**kw):
    torch.manual_seed(0)
    m = DMJD(DMJDConfig(**{**TINY, **kw}), INFO)
    begin_step(m)
    return m


def make_batch(method, n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 16, 16), generator=g, dtype=torch.uint8)
    torch.manual_seed(seed)
    return pretext_batch(method, images)


def skimage_cells(image: np.ndarray, cell: int, orientations: int = 9) -> np.ndarray:
    """scikit-image's per-cell histograms (before block normalisation) of a 2-D image."""
    g_row, g_col = _hog_channel_gradient(image)
    rows, cols = image.shape[0] // cell, image.shape[1] // cell
    out = np.zeros((rows, cols, orientations))
    _hoghistogram.hog_histograms(
        g_col, g_row, cell, cell, image.shape[1], image.shape[0], cols, rows, orientations, out
    )  # fmt: skip
    return out


@pytest.mark.parametrize("cell", [7, 4, 2, 3])
@pytest.mark.parametrize("integer", [False, True])
def test_hog_cell_histograms_equal_skimage(cell, integer):
    rng = np.random.default_rng(cell)
    image = rng.integers(0, 256, (28, 28)).astype(float) if integer else rng.random((28, 28)) * 255
    ours = hog_cell_histograms(torch.from_numpy(image)[None, None], cell)[0, 0].numpy()
    np.testing.assert_allclose(ours, skimage_cells(image, cell), rtol=1e-6, atol=1e-4)
    # the public function with one-cell blocks: each cell's histogram L2-normalised
    public = hog(image, 9, (cell, cell), (1, 1), block_norm="L2", feature_vector=False)[:, :, 0, 0]
    np.testing.assert_allclose(ours / np.sqrt((ours**2).sum(-1, keepdims=True) + 1e-10), public, atol=1e-6)


def test_hog_patch_targets_upsample_standardise_and_lay_out_cells_as_the_reference():
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.random((2, 2, 14, 21)) * 255)  # two channels, 2 x 3 patches of 7 pixels
    k, p = 2, 7
    ours = hog_patch_targets(images, p, cells_per_patch=k)
    up = F.interpolate(images, scale_factor=k, mode="bilinear", align_corners=False).numpy()
    assert ours.shape == (2, 6, k * k * 9 * 2)
    for b in range(2):
        hists = [skimage_cells(up[b, c], p) for c in range(2)]  # (4, 6, 9) cells per channel
        hists = [(h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-5) for h in hists]
        for pr in range(2):
            for pc in range(3):
                want = [hists[c][pr * k + dh, pc * k + dw, o] for dh in range(k) for dw in range(k) for o in range(9)
                        for c in range(2)]  # fmt: skip
                np.testing.assert_allclose(ours[b, pr * 3 + pc].numpy(), want, atol=1e-5)
    # one cell per patch: no upsampling
    one = hog_patch_targets(images[:, :1], p, cells_per_patch=1)
    cells = hog_cell_histograms(images[:, :1], p)
    np.testing.assert_allclose(one.numpy(), F.layer_norm(cells, (9,), eps=1e-5).reshape(2, 6, 9).numpy())


def naive_dmjd_loss(pred, vis_pred, target, mask, ids_keep, theta, beta):
    """Per-token Python loop over the reference's forward_loss."""
    mim, n_masked, vis, n_vis = 0.0, 0, 0.0, 0
    for r in range(pred.shape[0]):
        for t in range(pred.shape[1]):
            if mask[r, t]:
                mim = mim + ((pred[r, t] - target[r, t]) ** 2).mean()
                n_masked += 1
        for j, t in enumerate(ids_keep[r].tolist()):
            for d in range(pred.shape[2]):
                x = (vis_pred[r, j, d] - target[r, t, d]).abs()
                vis = vis + (0.5 * x**2 / beta if x < beta else x - 0.5 * beta)
                n_vis += 1
    return mim / n_masked + theta * vis / n_vis


def test_dmjd_loss_equals_a_naive_loop_values_and_gradients():
    torch.manual_seed(0)
    n, length, dim = 6, 16, 5
    masks = disjoint_masks(2, 3, length, 0.75)
    mask = torch.cat([m.mask for m in masks])
    ids_keep = torch.cat([m.ids_keep for m in masks])
    pred = (3 * torch.randn(n, length, dim)).requires_grad_()
    vis_pred = (3 * torch.randn(n, 4, dim)).requires_grad_()  # |x| on both sides of beta
    target = torch.randn(n, length, dim)
    loss, mim, vis = dmjd_loss(pred, vis_pred, target, mask, ids_keep, vis_weight=0.7, vis_beta=2.0)
    ref = naive_dmjd_loss(pred, vis_pred, target, mask, ids_keep, 0.7, 2.0)
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(loss, mim + 0.7 * vis)
    got = torch.autograd.grad(loss, (pred, vis_pred))
    want = torch.autograd.grad(ref, (pred, vis_pred))
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)
    with pytest.raises(ValueError, match="differ in shape"):
        visible_distillation_loss(vis_pred, target)


def test_pretext_masks_are_disjoint_masks_and_the_views_partition_the_patches():
    m = tiny()
    pretext = m.pretext()
    image = torch.randint(0, 256, (1, 16, 16), dtype=torch.uint8)
    for seed in range(3):
        torch.manual_seed(seed)
        want = disjoint_masks(2, 1, 16, 0.75)
        torch.manual_seed(seed)
        item = pretext(image)
        assert torch.equal(item["mask"], torch.cat([w.mask for w in want]))
        assert torch.equal(item["ids_keep"], torch.cat([w.ids_keep for w in want]))
        assert torch.equal(item["ids_restore"], torch.cat([w.ids_restore for w in want]))
    batch = make_batch(m, n=5)
    mask = batch["mask"]
    assert mask.shape == (5, 2, 16) and batch["ids_keep"].shape == (5, 2, 4) and batch["image"].shape == (5, 1, 16, 16)
    assert (mask.sum(-1) == 12).all()
    assert (~mask).sum(1).max() == 1  # the visible sets are disjoint ...
    assert mask.any(1).all()  # ... and every patch is predicted in some view


def test_views_stack_view_major_and_the_loss_is_the_mean_of_the_views_losses():
    m = tiny()
    m.eval()
    batch = make_batch(m, n=4)
    full = m(batch)
    per_view = []
    for v in range(2):
        one = {k: (x[:, v : v + 1] if k != "image" else x) for k, x in batch.items()}
        out = m(one)
        per_view.append(out)
        # the encoder of view v sees image b's patches ids_keep[b, v] only
        latent = m.forward_encoder(batch["image"], batch["ids_keep"][:, v])
        for b in range(4):
            tokens = m.backbone.patch_embed(batch["image"][b : b + 1]) + m.backbone.pos_embed
            ref = m.backbone.encode(tokens[:, batch["ids_keep"][b, v]])
            torch.testing.assert_close(latent[b : b + 1], ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(full.loss, (per_view[0].loss + per_view[1].loss) / 2, atol=1e-5, rtol=1e-5)
    for key in ("loss_mim", "loss_vis"):
        torch.testing.assert_close(full.logs[key], (per_view[0].logs[key] + per_view[1].logs[key]) / 2)


def test_targets_hog_of_grey_levels_or_normalised_pixels():
    images = torch.randint(0, 256, (3, 1, 16, 16)).float()
    normalised = (images / 255 - 0.3) / 0.4
    hog_targets = tiny().targets(normalised)
    torch.testing.assert_close(hog_targets, hog_patch_targets(images, 4, 2), atol=1e-4, rtol=1e-4)
    assert hog_targets.shape == (3, 16, 36)
    pix = tiny(target="pixels").targets(normalised)
    raw = patchify(normalised, 4)
    torch.testing.assert_close(pix, (raw - raw.mean(-1, keepdim=True)) / (raw.var(-1, keepdim=True) + 1e-6) ** 0.5)
    assert torch.equal(tiny(target="pixels", norm_pix_loss=False).targets(normalised), raw)


@pytest.mark.parametrize("target", ["hog", "pixels"])
def test_every_trainable_parameter_gets_a_gradient(target):
    m = tiny(target=target)
    out = m(make_batch(m))
    out.loss.backward()
    assert torch.isfinite(out.loss) and out.loss.ndim == 0
    assert without_gradient(m) == []
    assert m.embed(torch.randn(2, 1, 16, 16)).shape == (2, 192)
    assert m.backbone_spec().name == "vit"


@pytest.mark.parametrize("target", ["hog", "pixels"])
def test_loss_falls_on_a_fixed_batch(target):
    m = tiny(target=target)
    losses = fit_fixed_batch(m, make_batch(m, n=8), steps=15, lr=2e-3)
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:3]), losses


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(target="dino"), "method.target"),
        (dict(n_views=0), "method.n_views"),
        (dict(hog_cells_per_patch=0), "hog_cells_per_patch"),
        (dict(decoder_dim=15), "decoder_heads"),
        (dict(mask_ratio=1.0), "mask_ratio"),
        (dict(mask_ratio=0.99), "no visible patch"),
    ],
)
def test_bad_config_names_the_setting(kw, match):
    with pytest.raises(ConfigError, match=match):
        DMJD(DMJDConfig(**{**TINY, **kw}), INFO)

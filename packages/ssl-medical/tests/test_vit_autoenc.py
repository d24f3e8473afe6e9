"""ViTAutoEnc pretraining (MONAI's vit_unetr_ssl tutorial recipe): views, loss against MONAI, gradients, fitting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssl_core.errors import ConfigError, DataError
from ssl_core.testing import fit_fixed_batch, pretext_batch, run_distributed, torch_threads, without_gradient
from ssl_core.testing.dist_checks import assert_same_as_one_process, sliced_loss_grads
from ssl_medical.info import VolumeInfo
from ssl_medical.methods.vit_autoenc import (
    CorruptedViews,
    ViTAutoEncSSL,
    ViTAutoEncSSLConfig,
    recon_contrastive_loss,
    scaled,
)

TINY = dict(patch_size=16, hidden_size=32, mlp_dim=64, num_layers=1, num_heads=2, deconv_chns=4)
INFO = VolumeInfo(patch_size=(32, 32, 32))


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny 3-D models: one thread is about as fast, and far faster on shared cores."""
    with torch_threads(1):
        yield


def patches(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Smooth-ish random patches in [0, 1] with distinct values (so shuffles and fills are visible)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, size // 4, size // 4, size // 4, generator=g)
    x = F.interpolate(x, size=(size,) * 3, mode="trilinear", align_corners=False)
    return x + 1e-4 * torch.rand(x.shape, generator=g)


def box_mask(coords: list, shape: tuple[int, ...]) -> np.ndarray:
    """Union of MONAI hole boxes (``(slice(None), sd, sh, sw)``) as a boolean array of ``shape``."""
    mask = np.zeros(shape, dtype=bool)
    for h in coords:
        mask[h] = True
    return mask


def test_corruption_sizes_scale_from_the_tutorial():
    assert scaled(32, (32, 32, 32), 96) == (11, 11, 11)
    assert scaled(5, (32, 64, 96), 96) == (2, 3, 5)
    assert scaled(8, (32, 32, 32), None) == (8, 8, 8)
    views = ViTAutoEncSSL(ViTAutoEncSSLConfig(**TINY), INFO).pretext()
    assert views.dropouts[0].spatial_size == (2, 2, 2) and views.dropouts[0].max_spatial_size == (11, 11, 11)
    assert views.dropouts[1].spatial_size == (7, 7, 7) and views.dropouts[1].max_spatial_size == (21, 21, 21)
    assert views.dropouts[0].dropout_holes and not views.dropouts[1].dropout_holes
    assert views.shuffle.spatial_size == (3, 3, 3) and views.shuffle.holes == 10 and views.shuffle.prob == 0.8


@pytest.mark.parametrize("which", [0, 1])
def test_dropout_changes_only_its_region(which):
    x = patches(1)[0].numpy()
    views = CorruptedViews((32, 32, 32), 6, ((2,) * 3, (11,) * 3), ((7,) * 3, (21,) * 3), 0.0, 10, (3,) * 3)
    views.dropouts = [views.dropouts[which]]  # force one branch of the OneOf
    before = x.copy()
    out = views.corrupt(x, np.random.RandomState(3)).numpy()
    np.testing.assert_array_equal(x, before)  # the input is not modified in place
    boxes = box_mask(views.dropouts[0].hole_coords, x.shape)
    changed = boxes if which == 0 else ~boxes  # noise inside the holes, or outside the kept boxes
    assert 0 < changed.mean() < 1
    np.testing.assert_array_equal(out[~changed], x[~changed])
    assert (out[changed] != x[changed]).mean() > 0.99
    assert out[changed].min() >= x.min() and out[changed].max() < x.max()  # uniform in the patch's [min, max)


def test_shuffle_permutes_inside_its_boxes_only():
    x = patches(1)[0].numpy()
    views = CorruptedViews((32, 32, 32), 6, ((2,) * 3, (11,) * 3), ((7,) * 3, (21,) * 3), 1.0, 10, (3,) * 3)
    rng = np.random.RandomState(5)
    views.shuffle.set_random_state(state=rng)
    out = views.shuffle(x.copy()).as_subclass(torch.Tensor).numpy()
    boxes = box_mask(views.shuffle.hole_coords, x.shape)
    np.testing.assert_array_equal(out[~boxes], x[~boxes])
    np.testing.assert_array_equal(np.sort(out[boxes]), np.sort(x[boxes]))  # the same values, moved
    assert (out[boxes] != x[boxes]).mean() > 0.5


def test_views_reproducible_under_torch_seed():
    method = ViTAutoEncSSL(ViTAutoEncSSLConfig(**TINY), INFO)
    pretext, x = method.pretext(), patches(2)
    torch.manual_seed(7)
    a = [pretext(p) for p in x]
    torch.manual_seed(7)
    b = [pretext(p) for p in x]
    torch.manual_seed(8)
    c = pretext(x[0])
    for ia, ib, p in zip(a, b, x, strict=True):
        assert set(ia) == {"view1", "view2", "target"}
        for k in ia:
            assert ia[k].shape == (1, 32, 32, 32) and ia[k].dtype == torch.float32 and type(ia[k]) is torch.Tensor
            torch.testing.assert_close(ia[k], ib[k], rtol=0, atol=0)
        torch.testing.assert_close(ia["target"], p, rtol=0, atol=0)
        assert not torch.equal(ia["view1"], ia["view2"])
        assert not torch.equal(ia["view1"], p)
    assert not torch.equal(a[0]["view1"], c["view1"])


def test_bad_input_and_config_errors():
    with pytest.raises(ConfigError, match="square number"):
        ViTAutoEncSSLConfig(patch_size=8)
    with pytest.raises(ConfigError, match="contrastive_weight"):
        ViTAutoEncSSLConfig(contrastive_weight="sum")
    with pytest.raises(ConfigError, match="inner_size"):
        ViTAutoEncSSLConfig(inner_size=(9, 3))
    with pytest.raises(ConfigError, match="multiple of method.patch_size"):
        ViTAutoEncSSL(ViTAutoEncSSLConfig(**TINY), VolumeInfo(patch_size=(32, 32, 24)))
    pretext = ViTAutoEncSSL(ViTAutoEncSSLConfig(**TINY), INFO).pretext()
    with pytest.raises(DataError, match="data.patch_size"):
        pretext(torch.rand(1, 16, 16, 16))
    with pytest.raises(DataError, match="data.patch_size"):
        pretext(torch.rand(32, 32, 32))


def tutorial_loss(o1, o2, gt, temperature=0.05):
    """The notebook's lines: L1Loss on view 1, ContrastiveLoss on the flattened outputs, r + cl * r."""
    from monai.losses import ContrastiveLoss

    r = torch.nn.L1Loss()(o1, gt)
    flat_1, flat_2 = o1.flatten(start_dim=1, end_dim=4), o2.flatten(start_dim=1, end_dim=4)
    cl = ContrastiveLoss(temperature=temperature)(flat_1, flat_2)
    return r + cl * r, r, cl


@pytest.mark.parametrize("weight", ["recon", 0.3])
def test_loss_matches_monai_values_and_gradients(weight):
    g = torch.Generator().manual_seed(1)
    o1, o2, gt = (torch.rand(4, 1, 8, 8, 8, generator=g, dtype=torch.float64) for _ in range(3))
    o2 = 0.7 * o1 + 0.3 * o2  # positives more alike than negatives
    ours_in = [t.clone().requires_grad_(True) for t in (o1, o2)]
    ref_in = [t.clone().requires_grad_(True) for t in (o1, o2)]
    out = recon_contrastive_loss(*ours_in, gt, 0.05, weight)
    total, r, cl = tutorial_loss(*ref_in, gt)
    if weight != "recon":
        total = r + weight * cl
    torch.testing.assert_close(out["loss"], total)
    torch.testing.assert_close(out["l1"], r.detach())
    torch.testing.assert_close(out["contrastive"], cl.detach())
    out["loss"].backward()
    total.backward()
    for a, b in zip(ours_in, ref_in, strict=True):
        torch.testing.assert_close(a.grad, b.grad)


def test_recon_both_views_averages_the_l1():
    g = torch.Generator().manual_seed(2)
    o1, o2, gt = (torch.rand(3, 1, 4, 4, 4, generator=g) for _ in range(3))
    out = recon_contrastive_loss(o1, o2, gt, recon_both_views=True, contrastive_weight=0.0)
    torch.testing.assert_close(out["loss"], 0.5 * ((o1 - gt).abs().mean() + (o2 - gt).abs().mean()))


def test_method_equals_the_tutorials_two_passes():
    """One pass over both views (ours) = the notebook's two passes + MONAI losses: loss and every gradient."""
    torch.manual_seed(0)
    method = ViTAutoEncSSL(ViTAutoEncSSLConfig(**TINY), INFO)
    torch.manual_seed(1)
    batch = pretext_batch(method, patches(3))
    loss = method(batch).loss
    loss.backward()
    ours = {k: p.grad.clone() for k, p in method.named_parameters() if p.requires_grad}
    method.zero_grad()
    o1, _ = method.backbone.net(batch["view1"])
    o2, _ = method.backbone.net(batch["view2"])
    total, _, _ = tutorial_loss(o1, o2, batch["target"])
    total.backward()
    torch.testing.assert_close(loss, total, rtol=1e-5, atol=1e-6)
    assert len(ours) == sum(p.requires_grad for p in method.parameters())
    for k, p in method.named_parameters():
        if not p.requires_grad:
            continue
        torch.testing.assert_close(ours[k], p.grad, rtol=1e-4, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")


def test_gathered_loss_equals_one_process_on_the_global_batch():
    """2 gloo processes with global negatives and the global L1 weight = one process on the concatenated batch."""
    g = torch.Generator().manual_seed(3)
    o1, o2, gt = (torch.rand(4, 1, 4, 4, 4, generator=g, dtype=torch.float64) for _ in range(3))
    sliced = {"recon_1": (o1, 0), "recon_2": (0.6 * o1 + 0.4 * o2, 0), "target": (gt, 0)}
    fn = "ssl_medical.methods.vit_autoenc:recon_contrastive_loss"
    cases = [
        {"fn": fn, "sliced": sliced, "args": {"temperature": 0.05}},
        {"fn": fn, "sliced": sliced, "args": {"temperature": 0.1, "contrastive_weight": 0.5}},
        {"fn": fn, "sliced": sliced, "args": {"recon_both_views": True}},
    ]
    assert_same_as_one_process(cases, run_distributed(sliced_loss_grads, 2, cases))


def test_gradients_reach_every_backbone_parameter_and_embed():
    torch.manual_seed(0)
    method = ViTAutoEncSSL(ViTAutoEncSSLConfig(**TINY), INFO)
    torch.manual_seed(0)
    out = method(pretext_batch(method, patches(3)))
    assert torch.isfinite(out.loss) and set(out.logs) == {"l1", "contrastive"}
    out.loss.backward()
    assert without_gradient(method.backbone) == []
    # only MONAI's unused cross-attention norms are frozen (they stay in the state dict)
    frozen = [k for k, p in method.backbone.named_parameters() if not p.requires_grad]
    assert frozen == ["net.blocks.0.norm_cross_attn.weight", "net.blocks.0.norm_cross_attn.bias"]
    method.eval()
    assert method.embed(patches(2)).shape == (2, 32)
    spec = method.backbone_spec()
    assert spec.name == "monai" and spec.embed_dim == 32 and spec.config["monai_class"] == "ViTAutoEnc"
    assert spec.config["kwargs"]["img_size"] == [32, 32, 32]


def test_embed_probe_patch_from_larger_training_patch():
    torch.manual_seed(0)
    method = ViTAutoEncSSL(ViTAutoEncSSLConfig(**TINY), VolumeInfo(patch_size=(48, 48, 48))).eval()
    assert method.embed(patches(2, 32)).shape == (2, 32)


def test_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    method = ViTAutoEncSSL(ViTAutoEncSSLConfig(**TINY), INFO)
    torch.manual_seed(0)
    batch = pretext_batch(method, patches(4))
    losses = fit_fixed_batch(method, batch, steps=20, lr=3e-3)
    assert all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses

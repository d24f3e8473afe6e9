"""Models Genesis corruptions against naive / NumPy references (Bezier curve, interpolation, block shuffling,
painting boxes), identities at probability 0, and the restoration method."""

import numpy as np
import pytest
import torch
from scipy.special import comb

from ssl_core.errors import ConfigError
from ssl_core.testing import fit_fixed_batch, pretext_batch, without_gradient
from ssl_medical.info import VolumeInfo
from ssl_medical.methods.models_genesis import GenesisPretext, ModelsGenesis, ModelsGenesisConfig
from ssl_medical.models.monai_nets import build_monai_backbone
from ssl_medical.pretext.genesis import (
    bezier_curve,
    genesis_corrupt,
    image_in_painting,
    image_out_painting,
    in_painting_boxes,
    intensity_curve,
    interp,
    local_pixel_shuffling,
    nonlinear_transformation,
    out_painting_boxes,
    random_flips,
    shuffle_blocks,
)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def volume(shape=(1, 16, 20, 24), seed=0):
    return torch.rand(shape, generator=gen(seed))


def ref_bezier(points, n_times):
    """The reference's bezier_curve (NumPy, scipy's comb)."""
    n = len(points)
    xp, yp = np.array([p[0] for p in points]), np.array([p[1] for p in points])
    t = np.linspace(0.0, 1.0, n_times)
    poly = np.array([comb(n - 1, i) * t ** (n - 1 - i) * (1 - t) ** i for i in range(n)])
    return xp @ poly, yp @ poly


def test_bezier_curve_and_interp_match_numpy():
    pts = [[0, 0], [0.2, 0.9], [0.7, 0.1], [1, 1]]
    xs, ys = bezier_curve(pts, 1000)
    rx, ry = ref_bezier(pts, 1000)
    np.testing.assert_allclose(xs.numpy(), rx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ys.numpy(), ry, rtol=1e-12, atol=1e-12)
    assert xs[0] == 1 and xs[-1] == 0  # t = 0 is the last control point
    g = np.random.default_rng(0)
    xp = np.sort(g.random(50))
    xp[10] = xp[11]  # a repeated abscissa, as sorted Bezier samples can have
    fp = g.random(50)
    x = torch.from_numpy(g.random(500) * 1.4 - 0.2)
    np.testing.assert_allclose(interp(x, torch.from_numpy(xp), torch.from_numpy(fp)).numpy(), np.interp(x, xp, fp))


@pytest.mark.parametrize("flip", [False, True])
def test_intensity_curve_matches_the_reference(flip):
    pts = [[0, 0], [0.8, 0.3], [0.1, 0.6], [1, 1]]
    x = volume()
    xv, yv = ref_bezier(pts, 100000)
    xv = np.sort(xv)
    yv = yv if flip else np.sort(yv)
    ref = np.interp(x.numpy().astype(np.float64), xv, yv)
    out = intensity_curve(x, pts, flip)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-6)
    order = x.flatten().argsort()
    diffs = out.flatten()[order].diff()
    assert bool((diffs <= 1e-6).all()) if flip else bool((diffs >= -1e-6).all())  # monotone either way


def test_nonlinear_transformation_range_and_identity():
    x = volume()
    assert torch.equal(nonlinear_transformation(x, gen(0), prob=0.0), x)
    for s in range(5):
        y = nonlinear_transformation(x, gen(s), prob=1.0, n_times=2000)
        assert y.shape == x.shape and y.dtype == x.dtype
        assert float(y.min()) >= 0 and float(y.max()) <= 1 and not torch.equal(y, x)
        assert torch.equal(y, nonlinear_transformation(x, gen(s), prob=1.0, n_times=2000))


def naive_shuffle(x, corners, sizes, keys):
    out = x.clone()
    for b in range(corners.shape[0]):
        (cx, cy, cz), (sx, sy, sz) = corners[b].tolist(), sizes[b].tolist()
        window = x[:, cx : cx + sx, cy : cy + sy, cz : cz + sz].reshape(x.shape[0], -1)
        perm = keys[b, : sx * sy * sz].argsort(stable=True)
        out[:, cx : cx + sx, cy : cy + sy, cz : cz + sz] = window[:, perm].reshape(x.shape[0], sx, sy, sz)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_shuffle_blocks_matches_a_sequential_loop(seed):
    g = gen(seed)
    x = torch.rand(2, 10, 11, 12, generator=g)
    n = 60  # many overlaps: the later block wins
    sizes = torch.randint(1, 4, (n, 3), generator=g)
    corners = torch.stack([torch.randint(0, s - 3 + 1, (n,), generator=g) for s in (10, 11, 12)], 1)
    corners = torch.minimum(corners, torch.tensor([10, 11, 12]) - sizes)
    keys = torch.rand(n, 27, generator=g)
    assert torch.equal(shuffle_blocks(x, corners, sizes, keys), naive_shuffle(x, corners, sizes, keys))
    ties = (keys * 4).floor() / 4  # many equal keys: ties keep the voxel order (a stable sort)
    assert torch.equal(shuffle_blocks(x, corners, sizes, ties), naive_shuffle(x, corners, sizes, ties))


def test_local_pixel_shuffling_permutes_within_a_block():
    x = volume((1, 32, 32, 32))
    assert torch.equal(local_pixel_shuffling(x, gen(0), prob=0.0), x)
    for s in range(5):
        y = local_pixel_shuffling(x, gen(s), prob=1.0, num_blocks=1)
        changed = (y != x)[0].nonzero()
        if changed.numel():
            lo, hi = changed.min(0).values, changed.max(0).values
            assert bool(((hi - lo) < 3).all())  # inside one block of sides <= 32 // 10
        box = tuple(slice(int(a), int(b) + 1) for a, b in zip(lo, hi, strict=True)) if changed.numel() else ()
        if box:
            assert torch.equal(y[0][box].flatten().sort().values, x[0][box].flatten().sort().values)
    y = local_pixel_shuffling(x, gen(1), prob=1.0)  # default density: ~2,500 blocks at 32^3
    assert y.shape == x.shape and not torch.equal(y, x)
    assert set(y.flatten().tolist()) <= set(x.flatten().tolist())  # only the volume's own values, moved


@pytest.mark.parametrize("seed", range(4))
def test_in_painting_changes_only_its_boxes(seed):
    x = volume((1, 32, 32, 32))
    boxes = in_painting_boxes(x.shape[1:], gen(seed))
    y = image_in_painting(x, gen(seed))
    inside = torch.zeros(x.shape, dtype=torch.bool)
    for corner, size in boxes:
        for c, b, s in zip(corner, size, x.shape[1:], strict=True):
            assert 3 <= c and c + b <= s - 3 and s // 6 <= b <= s // 3
        inside[(slice(None), *(slice(c, c + b) for c, b in zip(corner, size, strict=True)))] = True
    assert torch.equal(y[~inside], x[~inside])
    assert bool(((y[inside] >= 0) & (y[inside] < 1)).all()) and len(boxes) <= 5
    if boxes:
        assert not torch.equal(y[inside], x[inside])


@pytest.mark.parametrize("seed", range(4))
def test_out_painting_keeps_only_its_boxes(seed):
    x = volume((1, 32, 28, 24))
    boxes = out_painting_boxes(x.shape[1:], gen(seed))
    y = image_out_painting(x, gen(seed))
    inside = torch.zeros(x.shape, dtype=torch.bool)
    assert 1 <= len(boxes) <= 5
    for corner, size in boxes:
        for c, b, s in zip(corner, size, x.shape[1:], strict=True):
            assert 3 <= c and c + b <= s - 3 and s - 4 * s // 7 <= b <= s - 3 * s // 7
        inside[(slice(None), *(slice(c, c + b) for c, b in zip(corner, size, strict=True)))] = True
    assert torch.equal(y[inside], x[inside])
    assert bool(((y[~inside] >= 0) & (y[~inside] < 1)).all()) and bool((y[~inside] != x[~inside]).all())


def test_flips_and_whole_corruption():
    x = volume((1, 16, 16, 16))
    y, axes = random_flips(x, gen(3), prob=1.0)
    assert len(axes) == 3 and torch.equal(y, x.flip(axes[0]).flip(axes[1]).flip(axes[2]))
    assert random_flips(x, gen(3), prob=0.0) == (x, [])
    c, t = genesis_corrupt(x, gen(0), flip_rate=0, local_rate=0, nonlinear_rate=0, paint_rate=0)
    assert torch.equal(c, x) and torch.equal(t, x)
    for s in range(6):
        c, t = genesis_corrupt(x, gen(s))
        assert c.shape == t.shape == x.shape
        assert float(c.min()) >= 0 and float(c.max()) <= 1
        assert torch.equal(t.flatten().sort().values, x.flatten().sort().values)  # the target: x flipped
        assert torch.equal(genesis_corrupt(x, gen(s))[0], c)
    # painting only, in-painting chosen: the target is untouched outside the boxes
    c, t = genesis_corrupt(x, gen(1), flip_rate=0, local_rate=0, nonlinear_rate=0, paint_rate=1, inpaint_rate=1)
    assert torch.equal(t, x) and (c != x).float().mean() < 0.5
    with pytest.raises(ConfigError, match=">= 16"):
        genesis_corrupt(volume((1, 12, 16, 16)), gen(0))
    with pytest.raises(ConfigError, match="local_rate"):
        genesis_corrupt(x, gen(0), local_rate=2.0)
    with pytest.raises(ValueError, match="C, D, H, W"):
        nonlinear_transformation(x[0], gen(0))


# ------------------------------------------------------------------------------------------------------ the method
TINY = {"channels": (4, 8, 16), "strides": (2, 2), "num_res_units": 0}
INFO16 = VolumeInfo(patch_size=(16, 16, 16))


def smooth_patches(n=4, seed=0):
    g = gen(seed)
    x = torch.nn.functional.interpolate(torch.rand(n, 1, 8, 8, 8, generator=g), size=(16, 16, 16), mode="trilinear")
    return list(x)


def test_method_loss_is_the_mse_of_the_sigmoid_restoration():
    torch.manual_seed(0)
    m = ModelsGenesis(ModelsGenesisConfig(**TINY), INFO16).train()
    batch = pretext_batch(m, smooth_patches())
    assert batch["image"].shape == batch["target"].shape == (4, 1, 16, 16, 16)
    out = m(batch)
    ref = ((torch.sigmoid(m.backbone.net(batch["image"])) - batch["target"]) ** 2).mean()
    torch.testing.assert_close(out.loss, ref)
    out.loss.backward()
    missing = without_gradient(m.backbone)
    assert not missing, f"no gradient for {missing}"
    m.eval()
    x = torch.stack(smooth_patches(2))
    assert m.embed(x).shape == (2, 28) and m.embed(torch.rand(2, 1, 32, 32, 32)).shape == (2, 28)
    spec = m.backbone_spec()
    assert spec.name == "monai" and spec.embed_dim == 28
    rebuilt = build_monai_backbone(spec.config)
    rebuilt.load_state_dict(m.backbone.state_dict(), strict=True)
    torch.testing.assert_close(rebuilt.eval()(x), m.embed(x))


def test_method_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    m = ModelsGenesis(ModelsGenesisConfig(**TINY), INFO16).train()
    batch = pretext_batch(m, smooth_patches())
    losses = fit_fixed_batch(m, batch, steps=30, lr=1e-2)
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5, losses


def test_pretext_and_config_errors():
    x = smooth_patches(1)[0]
    torch.manual_seed(3)
    a = GenesisPretext()(x)
    torch.manual_seed(3)
    b = GenesisPretext()(x)
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["target"], b["target"])
    with pytest.raises(ConfigError, match="paint_rate"):
        GenesisPretext(paint_rate=1.5)
    with pytest.raises(ConfigError, match=">= 16"):
        ModelsGenesis(ModelsGenesisConfig(**TINY), VolumeInfo(patch_size=(8, 8, 8)))
    with pytest.raises(ConfigError, match="one stride fewer"):
        ModelsGenesisConfig(channels=(4, 8), strides=(2, 2))

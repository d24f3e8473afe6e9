"""The six signal transformations of Sarkar & Etemad: values against naive references, invariants (negation and
flip are involutions, permutation keeps the segments, time warping keeps the length and endpoints), the noise's SNR,
generator-driven reproducibility and the errors."""

import math

import pytest
import torch

from ssl_core.errors import ConfigError
from ssl_medical.transforms.signal import (
    TRANSFORMS,
    SignalTransformConfig,
    add_noise,
    apply_transform,
    flip,
    negate,
    permute,
    resample_at,
    scale,
    segment_bounds,
    time_warp,
    warp_grid,
)


def series(n=4, c=2, length=140, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 6 * math.pi, length)
    return torch.sin(t)[None, None] * torch.rand(n, c, 1, generator=g) + 0.3 * torch.randn(n, c, length, generator=g)


def test_negate_flip_scale_against_naive_references():
    x = series()
    torch.testing.assert_close(negate(negate(x)), x)
    torch.testing.assert_close(negate(x), -x)
    torch.testing.assert_close(flip(flip(x)), x)
    ref = torch.tensor(
        [[[float(x[i, c, x.shape[-1] - 1 - t]) for t in range(x.shape[-1])] for c in range(2)] for i in range(4)]
    )
    torch.testing.assert_close(flip(x), ref)
    torch.testing.assert_close(scale(x, 1.1), 1.1 * x)
    assert flip(x[0]).shape == x[0].shape  # one (C, L) sample


@pytest.mark.parametrize(("length", "pieces"), [(140, 20), (140, 9), (10, 3), (7, 7)])
def test_segment_bounds_cover_the_series(length, pieces):
    b = segment_bounds(length, pieces)
    assert len(b) == pieces and b[0][0] == 0 and b[-1][1] == length
    assert all(e0 == s1 for (_, e0), (s1, _) in zip(b[:-1], b[1:], strict=True))
    sizes = [e - s for s, e in b]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_permutation_preserves_the_multiset_of_segments_and_is_never_the_identity():
    x = series(n=6)
    for pieces in (20, 2, 3):
        y = permute(x, pieces, torch.Generator().manual_seed(1))
        assert y.shape == x.shape
        bounds = segment_bounds(x.shape[-1], pieces)
        for xi, yi in zip(x, y, strict=True):
            assert not torch.equal(xi, yi)
            # read y back segment by segment: each is one of x's segments (same lengths in the new order)
            segs = [xi[:, s:e] for s, e in bounds]
            start, used = 0, []
            while start < yi.shape[-1]:
                match = [
                    j
                    for j, s in enumerate(segs)
                    if j not in used
                    and start + s.shape[-1] <= yi.shape[-1]
                    and torch.equal(yi[:, start : start + s.shape[-1]], s)
                ]
                assert match, "a segment of the permuted series is none of the original's"
                used.append(match[0])
                start += segs[match[0]].shape[-1]
            assert sorted(used) == list(range(pieces))
        # same values overall, both channels moved together
        torch.testing.assert_close(y.sort(-1).values, x.sort(-1).values)


def test_time_warp_keeps_length_endpoints_and_is_a_monotone_resampling():
    length = 140
    g = torch.Generator().manual_seed(0)
    grid = warp_grid(length, 9, 1.05, g)
    assert grid.shape == (length,)
    assert grid[0] == 0 and grid[-1] == length - 1 and (grid.diff() > 0).all()
    # stretched pieces are read more slowly (step 1/1.05 of the unwarped rate, up to the final rescale)
    steps = grid.diff()
    assert steps.min() < 1 < steps.max()
    assert steps.max() / steps.min() == pytest.approx(1.05**2, rel=1e-6)
    # stretch 1 is the identity
    torch.testing.assert_close(warp_grid(length, 9, 1.0, g), torch.arange(length, dtype=torch.float64))
    x = series(length=length)
    torch.testing.assert_close(time_warp(x, 9, 1.0), x)
    y = time_warp(x, 9, 1.05, torch.Generator().manual_seed(3))
    assert y.shape == x.shape and not torch.allclose(y, x)
    torch.testing.assert_close(y[..., 0], x[..., 0])
    torch.testing.assert_close(y[..., -1], x[..., -1])
    # linear interpolation against numpy-free naive loop
    pos = torch.tensor([0.0, 0.5, 2.25, 139.0], dtype=torch.float64)
    s = x[0, 0]
    ref = torch.stack([s[int(p)] * (1 - (p - int(p))) + s[min(int(p) + 1, 139)] * (p - int(p)) for p in pos.tolist()])
    torch.testing.assert_close(resample_at(s, pos), ref.float())


def test_noise_has_the_requested_snr_on_average():
    x = series(n=200, length=500)
    for snr in (15.0, 5.0):
        y = add_noise(x, snr, torch.Generator().manual_seed(0))
        noise = y - x
        ratio = 10 * torch.log10(x.pow(2).mean(-1) / noise.pow(2).mean(-1))
        assert ratio.mean().item() == pytest.approx(snr, abs=0.1)
        assert noise.mean().abs() < 0.01


def test_generator_makes_draws_reproducible_and_global_generator_is_used_by_default():
    x = series()
    cfg = SignalTransformConfig()
    for name in ("noise", "permute", "time_warp"):
        a = apply_transform(name, x, cfg, torch.Generator().manual_seed(5))
        b = apply_transform(name, x, cfg, torch.Generator().manual_seed(5))
        torch.testing.assert_close(a, b)
        torch.manual_seed(7)
        c = apply_transform(name, x, cfg)
        torch.manual_seed(7)
        torch.testing.assert_close(apply_transform(name, x, cfg), c)
    # each series of a batch gets its own draw
    p = permute(x[:1].expand(5, -1, -1).contiguous(), 20, torch.Generator().manual_seed(0))
    assert len({tuple(s.flatten().tolist()) for s in p}) == 5
    for name in TRANSFORMS:
        assert apply_transform(name, x, cfg).shape == x.shape


def test_errors():
    with pytest.raises(ConfigError, match="names"):
        SignalTransformConfig(names=("noise", "rotate"))
    with pytest.raises(ConfigError, match="pieces"):
        segment_bounds(10, 11)
    with pytest.raises(ConfigError, match="scale_factor"):
        SignalTransformConfig(scale_factor=1.0)
    with pytest.raises(ConfigError, match="unknown signal transformation"):
        apply_transform("rotate", series(), SignalTransformConfig())
    with pytest.raises(ValueError, match=r"\(\.\.\., C, L\)"):
        negate(torch.zeros(10))

"""Audio augmentations: shapes, determinism under a seed, and each op against a naive reference."""

import math

import pytest
import torch
import torch.nn.functional as F

from ssl_audio.transforms import (
    BatchMix,
    FrequencyMask,
    GaussianNoise,
    LogMixupExp,
    RandomCrop,
    RandomFrameCrop,
    RandomGain,
    RandomResizeCrop,
    TimeMask,
    add_at_snr,
    axis_mask,
    crop,
    gain,
    log_mixup_exp,
    resize_crop,
)


def wave(b=4, t=1600, seed=0):
    return torch.randn(b, t, generator=torch.Generator().manual_seed(seed)) * 0.1


def spec(b=4, m=16, t=20, seed=0):
    return torch.randn(b, m, t, generator=torch.Generator().manual_seed(seed))


def test_crop_matches_slicing():
    x, s = wave(), spec()
    starts = torch.tensor([0, 5, 100, 1000])
    out = crop(x, starts, 600)
    assert out.shape == (4, 600)
    for b in range(4):
        torch.testing.assert_close(out[b], x[b, starts[b] : starts[b] + 600])
    out = crop(s, torch.tensor([0, 1, 2, 10]), 10)
    for b, st in enumerate([0, 1, 2, 10]):
        torch.testing.assert_close(out[b], s[b, :, st : st + 10])
    with pytest.raises(ValueError):
        crop(x, starts, 2000)


def test_gain_in_db():
    x = wave()
    out = gain(x, torch.tensor([0.0, 20.0, -20.0, 6.0]))
    torch.testing.assert_close(out[0], x[0])
    torch.testing.assert_close(out[1], 10 * x[1])
    torch.testing.assert_close(out[2], 0.1 * x[2])
    ratio_db = 10 * torch.log10(out[3].pow(2).mean() / x[3].pow(2).mean())
    assert abs(ratio_db.item() - 6.0) < 1e-4


def test_add_at_snr_reaches_the_ratio():
    x, n = wave(seed=1), wave(seed=2) * 3
    snr = torch.tensor([0.0, 10.0, 20.0, 35.0])
    y = add_at_snr(x, n, snr)
    added = y - x
    measured = 10 * torch.log10(x.pow(2).mean(1) / added.pow(2).mean(1))
    torch.testing.assert_close(measured, snr, atol=1e-3, rtol=0)
    # the added signal is the noise, scaled
    for b in range(4):
        assert torch.allclose(F.cosine_similarity(added[b], n[b], dim=0), torch.tensor(1.0), atol=1e-5)


def test_axis_mask_covers_drawn_ranges():
    s = spec()
    starts, widths = torch.tensor([0, 3, 10, 5]), torch.tensor([2, 0, 6, 1])
    for axis in (1, 2):
        out = axis_mask(s, starts, widths, axis, value=-1.0)
        ref = s.clone()
        for b in range(4):
            sl = slice(int(starts[b]), int(starts[b] + widths[b]))
            if axis == 1:
                ref[b, sl, :] = -1.0
            else:
                ref[b, :, sl] = -1.0
        torch.testing.assert_close(out, ref)
    # several masks per sample
    out = axis_mask(s, torch.tensor([[0, 5]] * 4), torch.tensor([[1, 2]] * 4), 2)
    assert (out[:, :, [0, 5, 6]] == 0).all() and torch.equal(out[:, :, [1, 2, 3, 4, 7]], s[:, :, [1, 2, 3, 4, 7]])


@pytest.mark.parametrize("cls", [FrequencyMask, TimeMask])
def test_random_masks_stay_within_the_width_and_match_draws(cls):
    s = spec(b=8)
    m = cls(max_width=5, num_masks=2, generator=torch.Generator().manual_seed(3))
    out = m(s)
    starts, widths = cls(5, 2, generator=torch.Generator().manual_seed(3)).draw(8, s.shape[cls.axis])
    torch.testing.assert_close(out, axis_mask(s, starts, widths, cls.axis))
    assert (widths <= 5).all() and (starts + widths <= s.shape[cls.axis]).all()
    zeroed = (out == 0).all(dim=3 - cls.axis)  # whole bands (frequency) or whole frames (time)
    assert (zeroed.sum(1) <= 10).all()


def test_log_mixup_exp_formula():
    x, o = spec(seed=1), spec(seed=2)
    lam = torch.tensor([0.0, 0.1, 0.25, 0.4])
    out = log_mixup_exp(x, o, lam)
    ref = torch.log((1 - lam)[:, None, None] * torch.exp(x) + lam[:, None, None] * torch.exp(o))
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(out[0], x[0])
    # large log energies do not overflow
    assert torch.isfinite(log_mixup_exp(x + 200, o + 200, lam)).all()


def test_log_mixup_random_partner_is_another_clip():
    s = spec(b=6)
    out = LogMixupExp(0.4, generator=torch.Generator().manual_seed(0))(s)
    g = torch.Generator().manual_seed(0)
    partner = (torch.arange(6) + torch.randint(1, 6, (6,), generator=g)) % 6
    lam = 0.4 * torch.rand(6, generator=g)
    assert (partner != torch.arange(6)).all() and (lam < 0.4).all()
    torch.testing.assert_close(out, log_mixup_exp(s, s[partner], lam))


def test_resize_crop_against_naive_canvas():
    s = spec(m=16, t=20)
    # canvas 16 x 30, the clip in columns 5..24: the box of the clip itself gives it back exactly
    same = resize_crop(s, torch.tensor([[0, 5, 16, 20]] * 4))
    torch.testing.assert_close(same, s)
    boxes = torch.tensor([[0, 0, 16, 30], [2, 3, 10, 12], [0, 10, 16, 20], [5, 20, 8, 10]])
    out = resize_crop(s, boxes)
    for b, (i, j, h, w) in enumerate(boxes.tolist()):
        canvas = torch.zeros(16, 30)
        canvas[:, 5:25] = s[b]
        ref = F.interpolate(canvas[i : i + h, j : j + w][None, None], (16, 20), mode="bicubic", align_corners=True)
        torch.testing.assert_close(out[b], ref[0, 0])


def test_random_resize_crop_boxes_lie_on_the_canvas():
    rrc = RandomResizeCrop(generator=torch.Generator().manual_seed(0))
    boxes = rrc.draw(500, 64, 100)
    i, j, h, w = boxes.T
    assert (i >= 0).all() and (j >= 0).all() and (i + h <= 64).all() and (j + w <= 150).all()
    assert h.min() >= int(0.6 * 64) and w.min() >= int(0.6 * 100) and w.max() > 100
    assert rrc(spec(m=64, t=100)).shape == (4, 64, 100)


@pytest.mark.parametrize(
    "make, x",
    [
        (lambda g: RandomCrop(800, generator=g), wave()),
        (lambda g: RandomFrameCrop(12, generator=g), spec()),
        (lambda g: RandomGain(generator=g), wave()),
        (lambda g: GaussianNoise(generator=g), wave()),
        (lambda g: BatchMix(generator=g), wave()),
        (lambda g: FrequencyMask(4, generator=g), spec()),
        (lambda g: TimeMask(4, generator=g), spec()),
        (lambda g: LogMixupExp(generator=g), spec()),
        (lambda g: RandomResizeCrop(generator=g), spec()),
    ],
)
def test_shapes_and_determinism(make, x):
    a = make(torch.Generator().manual_seed(7))(x)
    b = make(torch.Generator().manual_seed(7))(x)
    c = make(torch.Generator().manual_seed(8))(x)
    torch.testing.assert_close(a, b)
    assert a.shape[:-1] == x.shape[:-1] and torch.isfinite(a).all()
    assert not torch.equal(a, c)
    # the global generator when none is given
    torch.manual_seed(1)
    d = make(None)(x)
    torch.manual_seed(1)
    torch.testing.assert_close(d, make(None)(x))


def test_batch_mix_adds_another_clip_at_the_snr():
    x = wave(b=3)
    g = torch.Generator().manual_seed(0)
    out = BatchMix(10.0, 10.0, generator=g)(x)
    added = out - x
    for b in range(3):
        # the added signal is another clip of the batch, scaled to 10 dB below
        sims = [F.cosine_similarity(added[b], x[k], dim=0).item() for k in range(3)]
        assert max(sims) > 0.999 and sims.index(max(sims)) != b
        assert math.isclose(10 * math.log10(x[b].pow(2).mean() / added[b].pow(2).mean()), 10.0, abs_tol=1e-3)

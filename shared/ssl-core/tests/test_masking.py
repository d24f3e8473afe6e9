"""Patch masks (random, block, tube, disjoint) and mask-ratio schedules: counts, index maps, distributions
over many seeds, and references written from MAE's and BEiT's algorithms."""

import math
import random

import numpy as np
import pytest
import torch

from ssl_core.errors import ConfigError
from ssl_core.masking import (
    block_mask,
    disjoint_masks,
    mask_ratio_schedule,
    phase_schedule,
    random_mask,
    tube_mask,
)


def mae_random_masking(noise, mask_ratio):
    """``random_masking`` of facebookresearch/mae (models_mae.py), given its noise."""
    n, length = noise.shape
    len_keep = int(length * (1 - mask_ratio))
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :len_keep]
    mask = torch.ones([n, length])
    mask[:, :len_keep] = 0
    return ids_keep, torch.gather(mask, dim=1, index=ids_restore), ids_restore


def check_index_maps(info, length):
    b = info.mask.shape[0]
    kept = torch.zeros(b, length, dtype=torch.bool).scatter_(1, info.ids_keep, True)
    assert torch.equal(kept, ~info.mask)  # ids_keep lists exactly the visible tokens
    # MAE's decoder: visible tokens then mask tokens, un-shuffled by ids_restore, give the token order
    x = torch.arange(length).expand(b, length)
    visible = x.gather(1, info.ids_keep)
    filler = torch.full((b, length - visible.shape[1]), -1)
    restored = torch.cat([visible, filler], dim=1).gather(1, info.ids_restore)
    assert torch.equal(restored, torch.where(info.mask, -1, x))


@pytest.mark.parametrize("length,ratio", [(16, 0.75), (49, 0.6), (10, 0.0), (7, 0.9)])
def test_random_mask_is_maes_random_masking(length, ratio):
    info = random_mask(5, length, ratio, generator=torch.Generator().manual_seed(length))
    noise = torch.rand(5, length, generator=torch.Generator().manual_seed(length))
    ids_keep, mask, ids_restore = mae_random_masking(noise, ratio)
    assert torch.equal(info.ids_keep, ids_keep)
    assert torch.equal(info.mask, mask.bool())
    assert torch.equal(info.ids_restore, ids_restore)
    assert (info.mask.sum(1) == length - int(length * (1 - ratio))).all()
    check_index_maps(info, length)


def test_random_mask_is_uniform_and_reproducible():
    g = torch.Generator().manual_seed(0)
    masks = random_mask(4000, 12, 0.75, generator=g).mask.float()
    freq = masks.mean(0)  # each position masked with probability 9/12
    assert (freq - 0.75).abs().max() < 5 * math.sqrt(0.75 * 0.25 / 4000)
    a = random_mask(3, 10, generator=torch.Generator().manual_seed(1)).mask
    b = random_mask(3, 10, generator=torch.Generator().manual_seed(1)).mask
    c = random_mask(3, 10, generator=torch.Generator().manual_seed(2)).mask
    assert torch.equal(a, b) and not torch.equal(a, c)


def beit_masking_generator(height, width, num_masking_patches, min_num_patches=16, min_aspect=0.3, rng=random):
    """BEiT's MaskingGenerator (Algorithm 1 of the paper), with Python's random as the original."""
    mask = np.zeros((height, width), dtype=int)
    log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))
    count = 0
    while count < num_masking_patches:
        max_mask = num_masking_patches - count
        delta = 0
        for _ in range(10):
            area = rng.uniform(min_num_patches, max_mask)
            aspect = math.exp(rng.uniform(*log_aspect))
            h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            if w < width and h < height:
                top, left = rng.randint(0, height - h), rng.randint(0, width - w)
                num_masked = mask[top : top + h, left : left + w].sum()
                if 0 < h * w - num_masked <= max_mask:
                    for i in range(top, top + h):
                        for j in range(left, left + w):
                            if mask[i, j] == 0:
                                mask[i, j] = 1
                                delta += 1
            if delta > 0:
                break
        if delta == 0:
            break
        count += delta
    return mask


def _neighbour_share(mask):
    """Share of masked patches with at least two masked 4-neighbours: near 1 inside blocks, about half for
    scattered patches at this ratio."""
    m = torch.as_tensor(mask).bool()
    padded = torch.nn.functional.pad(m.float(), (1, 1, 1, 1))
    neighbours = padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:]
    return ((neighbours >= 2) & m).sum().item() / max(m.sum().item(), 1)


def test_block_mask_follows_beits_algorithm_in_distribution():
    g = torch.Generator().manual_seed(0)
    ours = block_mask(300, 14, 14, mask_ratio=75 / 196, generator=g)
    rng = random.Random(0)
    theirs = [beit_masking_generator(14, 14, 75, rng=rng) for _ in range(300)]
    counts = ours.flatten(1).sum(1).float()
    their_counts = torch.tensor([m.sum() for m in theirs], dtype=torch.float)
    assert counts.max() <= 75  # never more than the target
    assert abs(counts.mean() - their_counts.mean()) < 2.0
    assert abs((counts == 75).float().mean() - (their_counts == 75).float().mean()) < 0.15
    ours_blocky = np.mean([_neighbour_share(m) for m in ours])
    theirs_blocky = np.mean([_neighbour_share(m) for m in theirs])
    assert ours_blocky > 0.85 and abs(ours_blocky - theirs_blocky) < 0.03
    random_share = np.mean([_neighbour_share(m.view(14, 14)) for m in random_mask(300, 196, 75 / 196).mask])
    assert random_share < 0.7  # the statistic does tell blocks from scattered patches


def test_tube_mask_repeats_one_frame_mask():
    g = torch.Generator().manual_seed(3)
    info = tube_mask(50, frames=4, patches_per_frame=9, mask_ratio=0.7, generator=g)
    per_frame = info.mask.view(50, 4, 9)
    assert (per_frame == per_frame[:, :1]).all()
    assert (per_frame.sum(-1) == int(0.7 * 9)).all()  # VideoMAE's count
    check_index_maps(info, 36)
    freq = per_frame[:, 0].float().mean(0)
    assert (freq - 6 / 9).abs().max() < 0.25


@pytest.mark.parametrize("n_views,ratio", [(2, 0.75), (3, 0.3), (4, 0.75), (3, 0.5)])
def test_disjoint_masks_cover_the_tokens_evenly(n_views, ratio):
    length = 20
    g = torch.Generator().manual_seed(n_views)
    views = disjoint_masks(n_views, 64, length, ratio, generator=g)
    num_masked = length - int(length * (1 - ratio))
    stacked = torch.stack([v.mask for v in views])  # (V, B, L)
    assert (stacked.sum(-1) == num_masked).all()  # every view keeps the masking rate
    times = stacked.sum(0)
    assert (times.max(1).values - times.min(1).values <= 1).all()  # balanced over tokens
    assert (times.min(1).values == (n_views * num_masked) // length).all()
    if n_views * num_masked <= length:  # masked sets pairwise disjoint
        assert (times <= 1).all()
    else:  # every token is reconstructed in some view
        assert (times >= 1).all()
    for v in views:
        check_index_maps(v, length)


def test_two_disjoint_views_are_dmjd_views():
    views = disjoint_masks(2, 200, 16, 0.75, generator=torch.Generator().manual_seed(0))
    first, second = views[0].mask, views[1].mask
    assert (second | first).all() and not (~first & ~second).any()  # visible sets disjoint
    # the second view is random inside that constraint: each of the first's masked tokens equally likely
    share = (second & first).float().sum(0) / first.float().sum(0)
    assert (share - 8 / 12).abs().max() < 0.15


def test_mask_ratio_schedules():
    lin = mask_ratio_schedule(0.15, 0.3, 11)
    assert lin[0] == pytest.approx(0.15) and lin[-1] == pytest.approx(0.3) and lin[5] == pytest.approx(0.225)
    cos = mask_ratio_schedule(0.1, 0.5, 101, shape="cosine")
    assert cos[0] == pytest.approx(0.1) and cos[-1] == pytest.approx(0.5) and cos[50] == pytest.approx(0.3)
    assert (np.diff(cos) >= 0).all() and np.diff(cos)[0] < np.diff(cos)[50]  # slow start
    # BIOptimus's four phases: 15%, 15% (whole words), 20%, 20% (no corruption)
    phases = phase_schedule([0.15, 0.15, 0.2, 0.2], [0.25, 0.25, 0.25, 0.25], 10)
    assert phases.tolist() == pytest.approx([0.15] * 5 + [0.2] * 5)
    assert phase_schedule([1.0, 0.0], [0.3, 0.7], 10).tolist() == [1.0] * 3 + [0.0] * 7


def test_errors():
    with pytest.raises(ConfigError, match="mask_ratio"):
        random_mask(2, 4, 1.0)
    with pytest.raises(ConfigError, match="n_views"):
        disjoint_masks(0, 2, 4)
    with pytest.raises(ConfigError, match="shape"):
        mask_ratio_schedule(0.1, 0.2, 5, shape="step")
    with pytest.raises(ConfigError, match="sum to 1"):
        phase_schedule([0.1, 0.2], [0.5, 0.6], 10)

"""The data checks and splits every modality's loaders share."""

import numpy as np
import pytest
import torch

from ssl_core.data import check_finite, class_permutations, stratified_split
from ssl_core.errors import DataError


@pytest.mark.parametrize("as_numpy", [False, True])
def test_check_finite_counts_nan_and_infinity_and_names_the_source(as_numpy):
    x = torch.zeros(4, 5, dtype=torch.float64)
    x[0, :3] = float("nan")
    x[2, 1] = float("inf")
    x[3, 4] = -float("inf")
    x = x.numpy() if as_numpy else x
    with pytest.raises(DataError, match=r"^data/x.npy holds 5 non-finite values \(3 NaN, 2 infinite\) of 20; "):
        check_finite(x, "data/x.npy")
    check_finite(x[1], "a clean row")


def test_check_finite_passes_finite_and_integer_inputs():
    check_finite(torch.randn(3, 3), "floats")
    check_finite(torch.randn(3, 3).half(), "halves")
    check_finite(np.arange(10), "integers")
    check_finite(torch.ones(0), "nothing")
    check_finite(np.full(3, np.finfo(np.float32).max, np.float32), "large but finite")
    with pytest.raises(DataError, match="1 non-finite values"):
        check_finite(torch.tensor([1.0, float("nan")], dtype=torch.bfloat16), "bfloat16")
    with pytest.raises(DataError, match=r"2 non-finite values \(0 NaN, 2 infinite\)"):
        check_finite(np.array([np.inf, -np.inf]), "overflowed")


def naive_stratified_split(labels, test_fraction, seed):
    """Sample by sample: shuffle each class (ascending classes, one generator), hold out the first
    round(n * f) of it, at least 1 and at most n - 1 (none of a single-sample class)."""
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for c in sorted({int(y) for y in labels if y >= 0}):
        members = [i for i, y in enumerate(labels) if y == c]
        order = [members[j] for j in torch.randperm(len(members), generator=g).tolist()]
        k = round(len(members) * test_fraction)
        k = 0 if len(members) == 1 else min(max(k, 1), len(members) - 1)
        test += order[:k]
        train += order[k:]
    return sorted(train), sorted(test)


@pytest.mark.parametrize("test_fraction", [0.2, 0.5, 0.9])
@pytest.mark.parametrize("seed", [0, 3])
def test_stratified_split_matches_the_naive_one(test_fraction, seed):
    g = torch.Generator().manual_seed(seed + 100)
    labels = torch.cat([torch.randint(-1, 7, (97,), generator=g), torch.tensor([9, 9, 11])])  # tiny classes too
    train, test = stratified_split(labels, test_fraction, seed)
    assert (train.tolist(), test.tolist()) == naive_stratified_split(labels.tolist(), test_fraction, seed)
    assert train.dtype == test.dtype == torch.long


def test_stratified_split_keeps_every_class_of_two_or_more_on_both_sides():
    labels = torch.tensor([0] * 10 + [1] * 2 + [2] + [3] * 3 + [-1] * 4)
    for f in (0.01, 0.2, 0.5, 0.99):
        train, test = stratified_split(labels, f, seed=1)
        assert set(train.tolist()).isdisjoint(test.tolist())
        assert sorted(train.tolist() + test.tolist()) == list(range(16))  # the unlabelled -1 are in neither
        counts = lambda idx: torch.bincount(labels[idx], minlength=4).tolist()  # noqa: E731
        assert counts(test)[1:] == [1, 0, 1 if f < 0.5 else 2]  # class 2 (one sample) stays in training
        assert min(counts(train)) >= 1 and counts(test)[0] == min(max(round(10 * f), 1), 9)
    from_list, from_tensor = (
        stratified_split([0, 0, 1, 1], 0.5, 7),
        stratified_split(torch.tensor([0, 0, 1, 1]), 0.5, 7),
    )
    assert all(torch.equal(a, b) for a, b in zip(from_list, from_tensor, strict=True))
    empty = stratified_split(torch.zeros(0, dtype=torch.long), 0.2)
    assert empty[0].shape == empty[1].shape == (0,)
    with pytest.raises(ValueError, match=r"test_fraction must lie in \(0, 1\)"):
        stratified_split(labels, 1.0)


def test_class_permutations_are_seeded_and_cover_each_class():
    labels = torch.tensor([2, 0, 2, -1, 0, 2])
    perms = class_permutations(labels, seed=5)
    assert [sorted(p.tolist()) for p in perms] == [[1, 4], [0, 2, 5]]
    assert all(torch.equal(a, b) for a, b in zip(perms, class_permutations(labels, seed=5), strict=True))

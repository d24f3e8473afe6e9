"""The data checks and splits every modality's loaders share."""

import numpy as np
import pytest
import torch

from ssl_core.data import check_finite
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

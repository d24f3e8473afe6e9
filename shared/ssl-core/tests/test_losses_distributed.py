"""Every loss that gathers across ranks: two gloo processes on the halves of a batch give the same loss and
gradients as one process on the whole batch (the bug class of lightly #1920/#1977 and VISSL PR #123).

All cases run in one pair of spawned processes, since starting them costs more than the losses.
"""

import pytest
import torch

from ssl_core.testing import run_distributed
from ssl_core.testing.dist_checks import assert_same_as_one_process, sliced_loss_grads

pytestmark = pytest.mark.distributed


def _cases() -> list[dict]:
    g = torch.Generator().manual_seed(0)
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    pair = lambda n, d: {"z_a": (r(n, d), 0), "z_b": (r(n, d), 0)}  # noqa: E731
    return [
        {"fn": "ssl_core.losses:nt_xent", "sliced": pair(8, 5), "args": {"temperature": 0.3}},
        {"fn": "ssl_core.losses:info_nce", "sliced": {"query": (r(8, 5), 0), "key": (r(8, 5), 0)}},
        {"fn": "ssl_core.losses:dcl", "sliced": pair(8, 5), "args": {"temperature": 0.3}},
        {"fn": "ssl_core.losses:dclw", "sliced": pair(8, 5), "args": {"temperature": 0.3, "sigma": 0.5}},
    ]


def test_gathering_losses_match_one_process():
    cases = _cases()
    results = run_distributed(sliced_loss_grads, 2, cases)
    assert_same_as_one_process(cases, results, rtol=1e-9, atol=1e-11)

"""Every loss that gathers across ranks: two gloo processes on the halves of a batch give the same loss and
gradients as one process on the whole batch (the bug class of lightly #1920/#1977 and VISSL PR #123).

All cases run in one pair of spawned processes, since starting them costs more than the losses.
"""

import pytest
import torch

from ssl_core.testing import run_distributed
from ssl_core.testing.dist_checks import assert_same_as_one_process, sliced_loss_grads

pytestmark = pytest.mark.distributed
CHECKS = "ssl_core.testing.dist_checks"


def _cases() -> list[dict]:
    g = torch.Generator().manual_seed(0)
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    pair = lambda n, d: {"z_a": (r(n, d), 0), "z_b": (r(n, d), 0)}  # noqa: E731
    mask = torch.rand(8, 5, generator=g) < 0.5
    labels = torch.tensor([0, 1, 2, 0, 1, 1, 3, 2])  # label 3 has no positive: an anchor left out
    regions_b = torch.randint(-1, 4, (4, 20), generator=g)
    regions_b[3] = regions_b[3] % 2  # the last image's regions 2 and 3 have no pixels: ranks hold 8 and 6
    return [
        {"fn": "ssl_core.losses:nt_xent", "sliced": pair(8, 5), "args": {"temperature": 0.3}},
        {"fn": "ssl_core.losses:info_nce", "sliced": {"query": (r(8, 5), 0), "key": (r(8, 5), 0)}},
        {"fn": "ssl_core.losses:dcl", "sliced": pair(8, 5), "args": {"temperature": 0.3}},
        {"fn": "ssl_core.losses:dclw", "sliced": pair(8, 5), "args": {"temperature": 0.3, "sigma": 0.5}},
        {"fn": "ssl_core.losses:barlow_twins", "sliced": pair(8, 5), "args": {"lambda_": 0.1}},
        {"fn": "ssl_core.losses:vicreg", "sliced": pair(8, 5)},
        {"fn": "ssl_core.losses:koleo", "sliced": {"z": (r(8, 5), 0)}},
        {
            "fn": "ssl_core.losses:swav_loss",
            "sliced": {"high_res_scores": (r(2, 8, 4), 1), "low_res_scores": (r(3, 8, 4), 1)},
        },
        {"fn": f"{CHECKS}:sinkhorn_codes", "sliced": {"scores": (r(8, 4), 0)}},
        {
            "fn": f"{CHECKS}:dino_loss_and_center",
            "sliced": {"student_out": (r(4, 8, 6), 1), "teacher_out": (r(2, 8, 6), 1)},
        },
        {
            "fn": f"{CHECKS}:ibot_loss_and_center",
            "sliced": {"student_patches": (r(8, 5, 6), 0), "teacher_patches": (r(8, 5, 6), 0), "mask": (mask, 0)},
        },
        {"fn": f"{CHECKS}:queue_after_enqueue", "sliced": {"features": (r(8, 3), 0)}},
        {"fn": f"{CHECKS}:mgda_weights", "sliced": {"x": (r(8, 3), 0)}},
        {"fn": "ssl_core.losses:supcon", "sliced": {"z": (r(8, 2, 5), 0), "labels": (labels, 0)}},
        {"fn": "ssl_core.losses:supcon", "sliced": {"z": (r(8, 5), 0), "labels": (labels, 0)}},  # 4 vs 3 anchors
        {"fn": "ssl_core.losses:clip_loss", "sliced": pair(8, 5), "args": {"temperature": 0.2}},
        {"fn": "ssl_core.losses:mil_nce", "sliced": {"video": (r(8, 5), 0), "text": (r(8, 3, 5), 0)}},
        {
            "fn": "ssl_core.losses:taco",
            "sliced": {"context": (r(8, 5), 0), "future": (r(8, 5), 0)},
            "args": {"weight": r(5, 5)},
        },
        {
            "fn": f"{CHECKS}:region_contrastive_per_image",
            "sliced": {
                "feats_a": (r(4, 12, 5), 0),
                "regions_a": (torch.randint(-1, 4, (4, 12), generator=g), 0),
                "feats_b": (r(4, 20, 5), 0),
                "regions_b": (regions_b, 0),
            },
            "args": {"regions_per_image": 4},
        },
    ]


def test_gathering_losses_match_one_process():
    cases = _cases()
    results = run_distributed(sliced_loss_grads, 2, cases)
    assert_same_as_one_process(cases, results, rtol=1e-9, atol=1e-11)

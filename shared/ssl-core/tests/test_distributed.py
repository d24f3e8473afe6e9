"""One process on the global batch vs two gloo processes on its halves: same loss and gradients."""

import pytest
import torch

from ssl_core.losses import nt_xent
from ssl_core.testing import ToyConfig, ToyMethod, run_distributed
from ssl_core.testing.dist_checks import ddp_param_grads, nt_xent_grads

pytestmark = pytest.mark.distributed


def test_gather_with_grad_nt_xent_matches_one_process():
    g = torch.Generator().manual_seed(0)
    z_a, z_b = torch.randn(12, 5, generator=g), torch.randn(12, 5, generator=g)
    a, b = z_a.clone().requires_grad_(True), z_b.clone().requires_grad_(True)
    loss = nt_xent(a, b, 0.3)
    loss.backward()
    results = run_distributed(nt_xent_grads, 2, z_a, z_b, 0.3)
    mean_loss = torch.stack([r["loss"] for r in results]).mean()
    torch.testing.assert_close(mean_loss, loss.detach())
    torch.testing.assert_close(torch.cat([r["grad_a"] for r in results]), a.grad)
    torch.testing.assert_close(torch.cat([r["grad_b"] for r in results]), b.grad)


def test_ddp_parameter_gradients_match_one_process():
    g = torch.Generator().manual_seed(1)
    x1, x2 = torch.randn(16, 8, generator=g), torch.randn(16, 8, generator=g)
    torch.manual_seed(3)
    method = ToyMethod(ToyConfig(dim=8))
    method((x1, x2)).loss.backward()
    single = {name: p.grad for name, p in method.named_parameters()}
    results = run_distributed(ddp_param_grads, 2, x1, x2, 3)
    for rank_grads in results:  # DDP leaves the averaged gradient on every rank
        assert rank_grads.keys() == single.keys()
        for name in single:
            torch.testing.assert_close(rank_grads[name], single[name], rtol=1e-5, atol=1e-6)

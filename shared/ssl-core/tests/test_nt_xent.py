import math

import pytest
import torch

from ssl_core.losses import NTXentLoss, nt_xent


def naive_nt_xent(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Eq. 1 of SimCLR, anchor by anchor, in float64."""
    z = torch.cat([z_a, z_b]).double()
    z = z / z.norm(dim=1, keepdim=True)
    n2 = len(z)
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        p = (i + n) % n2
        sims = [(z[i] @ z[k]) / temperature for k in range(n2) if k != i]
        total = total - ((z[i] @ z[p]) / temperature - torch.logsumexp(torch.stack(sims), 0))
    return total / n2


@pytest.mark.parametrize("n,d", [(1, 3), (7, 5), (33, 17)])
@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_naive_values_and_gradients(n, d, temperature, dtype):
    g = torch.Generator().manual_seed(n * 100 + d)
    a = torch.randn(n, d, generator=g, dtype=dtype, requires_grad=True)
    b = torch.randn(n, d, generator=g, dtype=dtype, requires_grad=True)
    ours = nt_xent(a, b, temperature)
    ga, gb = torch.autograd.grad(ours, (a, b))
    a2, b2 = a.detach().clone().requires_grad_(True), b.detach().clone().requires_grad_(True)
    ref = naive_nt_xent(a2, b2, temperature)
    ra, rb = torch.autograd.grad(ref, (a2, b2))
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ours.double(), ref, **tol)
    torch.testing.assert_close(ga.double(), ra.double(), **tol)
    torch.testing.assert_close(gb.double(), rb.double(), **tol)


def test_gradcheck():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, y: nt_xent(x, y, 0.3), (a, b))


def test_symmetric_in_the_two_views():
    a, b = torch.randn(9, 6), torch.randn(9, 6)
    torch.testing.assert_close(nt_xent(a, b), nt_xent(b, a))


def test_scale_invariant_and_known_limit():
    a = torch.randn(6, 4)
    torch.testing.assert_close(nt_xent(a, 3 * a), nt_xent(a, a))
    # orthogonal one-hot samples, identical views: positives at sim 1, negatives at 0
    e = torch.eye(4)
    t = 0.5
    expected = -(1 / t - math.log(math.exp(1 / t) + 6 * math.exp(0.0)))
    assert nt_xent(e, e, t).item() == pytest.approx(expected, rel=1e-6)


def test_matches_lightly():
    lightly_loss = pytest.importorskip("lightly.loss")
    g = torch.Generator().manual_seed(1)
    for n, d, t in [(8, 16, 0.5), (31, 7, 0.1), (64, 128, 0.2)]:
        a = torch.randn(n, d, generator=g, requires_grad=True)
        b = torch.randn(n, d, generator=g, requires_grad=True)
        ours = NTXentLoss(temperature=t)(a, b)
        ga, gb = torch.autograd.grad(ours, (a, b))
        peer = lightly_loss.NTXentLoss(temperature=t)(a, b)
        pa, pb = torch.autograd.grad(peer, (a, b))
        torch.testing.assert_close(ours, peer, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ga, pa, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(gb, pb, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "bad",
    [(torch.randn(3, 4), torch.randn(4, 4)), (torch.randn(3), torch.randn(3)), (torch.randn(0, 4), torch.randn(0, 4))],
)
def test_shape_errors(bad):
    with pytest.raises(ValueError):
        nt_xent(*bad)


def test_temperature_must_be_positive():
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(torch.randn(2, 3), torch.randn(2, 3), 0.0)

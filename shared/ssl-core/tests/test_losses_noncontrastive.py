"""Negative cosine, Barlow Twins, VICReg and KoLeo against element-wise references of the papers' equations
and against lightly."""

import math

import pytest
import torch

from ssl_core.losses import (
    BarlowTwinsLoss,
    KoLeoLoss,
    NegativeCosineLoss,
    VICRegLoss,
    barlow_twins,
    koleo,
    negative_cosine,
    vicreg,
)

TOL = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float64: dict(rtol=1e-9, atol=1e-10)}


def naive_negative_cosine(p, z):
    """SimSiam eq. 1: -mean_i <p_i/|p_i|, z_i/|z_i|>."""
    p, z = p.double(), z.double()
    return -sum((p[i] @ z[i]) / (p[i].norm() * z[i].norm()) for i in range(len(p))) / len(p)


def naive_barlow_twins(z_a, z_b, lam, eps=1e-5):
    """Barlow Twins eq. 1-2 entry by entry, with the batch standardisation of the authors' BatchNorm."""
    z_a, z_b = z_a.double(), z_b.double()
    n, d = z_a.shape

    def standardize(z):
        mu = z.sum(0) / n
        var = ((z - mu) ** 2).sum(0) / n
        return (z - mu) / torch.sqrt(var + eps)

    a, b = standardize(z_a), standardize(z_b)
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c_ij = sum(a[k, i] * b[k, j] for k in range(n)) / n
            loss = loss + ((1 - c_ij) ** 2 if i == j else lam * c_ij**2)
    return loss


def naive_vicreg(z_a, z_b, lam, mu, nu, eps=1e-4):
    """VICReg eqs. 1-6 written out (variance term halved as in the authors' code)."""
    z_a, z_b = z_a.double(), z_b.double()
    n, d = z_a.shape
    s = sum(((z_a[i] - z_b[i]) ** 2).sum() for i in range(n)) / (n * d)

    def v(z):
        total = 0.0
        for j in range(d):
            var_j = ((z[:, j] - z[:, j].mean()) ** 2).sum() / (n - 1)
            total = total + torch.relu(1 - torch.sqrt(var_j + eps))
        return total / d

    def c(z):
        zc = z - z.mean(0)
        total = 0.0
        for i in range(d):
            for j in range(d):
                if i != j:
                    total = total + ((zc[:, i] * zc[:, j]).sum() / (n - 1)) ** 2
        return total / d

    return lam * s + mu * 0.5 * (v(z_a) + v(z_b)) + nu * (c(z_a) + c(z_b))


def naive_koleo(z):
    """Sablayrolles et al. eq. 9: -mean_i log min_{j != i} |z_i - z_j| on unit vectors."""
    z = z.double() / z.double().norm(dim=1, keepdim=True)
    total = 0.0
    for i in range(len(z)):
        total = total + torch.log(min((z[i] - z[j]).norm() for j in range(len(z)) if j != i))
    return -total / len(z)


CASES = [
    ("negative_cosine", lambda a, b: negative_cosine(a, b), naive_negative_cosine),
    ("barlow_twins", lambda a, b: barlow_twins(a, b, 0.01), lambda a, b: naive_barlow_twins(a, b, 0.01)),
    ("vicreg", lambda a, b: vicreg(a, b, 25.0, 25.0, 1.0), lambda a, b: naive_vicreg(a, b, 25.0, 25.0, 1.0)),
    ("koleo", lambda a, b: koleo(a) + koleo(b), lambda a, b: naive_koleo(a) + naive_koleo(b)),
]


@pytest.mark.parametrize("name,fn,ref", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("n,d", [(2, 3), (7, 5), (16, 9)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_naive_values_and_gradients(name, fn, ref, n, d, dtype):
    g = torch.Generator().manual_seed(n * 31 + d)
    a = torch.randn(n, d, generator=g, dtype=dtype, requires_grad=True)
    b = (a.detach() + 0.5 * torch.randn(n, d, generator=g, dtype=dtype)).requires_grad_(True)
    ours = fn(a, b)
    ga, gb = torch.autograd.grad(ours, (a, b))
    a2, b2 = a.detach().double().requires_grad_(True), b.detach().double().requires_grad_(True)
    expected = ref(a2, b2)
    ra, rb = torch.autograd.grad(expected, (a2, b2))
    tol = TOL[dtype] if name != "koleo" else dict(rtol=1e-4, atol=1e-6)  # KoLeo's eps inside the distance
    torch.testing.assert_close(ours.double(), expected, **tol)
    torch.testing.assert_close(ga.double(), ra, **tol)
    torch.testing.assert_close(gb.double(), rb, **tol)


def test_gradcheck():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    for fn in (negative_cosine, barlow_twins, vicreg, lambda x, y: koleo(x) + koleo(y)):
        assert torch.autograd.gradcheck(fn, (a, b))


def test_known_values_and_invariances():
    x = torch.randn(10, 6)
    assert negative_cosine(x, 3 * x).item() == pytest.approx(-1.0, abs=1e-6)
    # standardised identical views: C is the correlation matrix, diagonal 1, so only redundancy remains
    corr = torch.corrcoef(x.T)
    off = (corr.pow(2).sum() - corr.diagonal().pow(2).sum()).item()
    assert barlow_twins(x, x, 0.1).item() == pytest.approx(0.1 * off, rel=1e-3, abs=1e-6)
    # Barlow Twins is invariant to per-dimension affine maps of each view (it standardises them)
    y = torch.randn(10, 6)
    torch.testing.assert_close(barlow_twins(2 * x + 1, 0.5 * y - 3), barlow_twins(x, y), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(vicreg(x, y), vicreg(y, x))
    # KoLeo on the corners of a square: nearest neighbour at distance sqrt(2) for each
    square = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    assert koleo(square).item() == pytest.approx(-math.log(math.sqrt(2)), abs=1e-6)


def test_matches_lightly():
    lightly_loss = pytest.importorskip("lightly.loss")
    g = torch.Generator().manual_seed(7)
    pairs = [
        (NegativeCosineLoss(), lightly_loss.NegativeCosineSimilarity(), 2),
        (BarlowTwinsLoss(lambda_=5e-3), lightly_loss.BarlowTwinsLoss(lambda_param=5e-3), 2),
        (VICRegLoss(), lightly_loss.VICRegLoss(), 2),
        (KoLeoLoss(), lightly_loss.KoLeoLoss(), 1),
    ]
    for ours_fn, peer_fn, n_inputs in pairs:
        for n, d in [(8, 16), (33, 7)]:
            inputs = [torch.randn(n, d, generator=g, requires_grad=True) for _ in range(n_inputs)]
            ours, peer = ours_fn(*inputs), peer_fn(*inputs)
            torch.testing.assert_close(ours, peer, rtol=1e-5, atol=1e-5, msg=type(peer_fn).__name__)
            for g1, g2 in zip(torch.autograd.grad(ours, inputs), torch.autograd.grad(peer, inputs), strict=True):
                torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-6, msg=type(peer_fn).__name__)


def test_errors():
    with pytest.raises(ValueError, match="one shape"):
        negative_cosine(torch.randn(3, 4), torch.randn(3, 5))
    with pytest.raises(ValueError, match="two samples"):
        barlow_twins(torch.randn(1, 4), torch.randn(1, 4))
    with pytest.raises(ValueError, match="two samples"):
        vicreg(torch.randn(1, 4), torch.randn(1, 4))
    with pytest.raises(ValueError, match="two samples"):
        koleo(torch.randn(1, 4))

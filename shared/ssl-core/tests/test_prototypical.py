"""Prototypical probe (Bird-MAE): the forward pass against a naive loop, and a task only it can solve."""

import pytest
import torch

from ssl_core.eval import linear_probe, prototypical_probe
from ssl_core.eval.prototypical import prototype_logits


def naive_prototype_logits(tokens, prototypes, weights, bias):
    """Sample by sample, prototype by prototype, token by token."""
    out = []
    for x in tokens:
        row = []
        for c in range(prototypes.shape[0]):
            z = bias[c]
            for j in range(prototypes.shape[1]):
                p = prototypes[c, j]
                sims = [x[t] @ p / (x[t].norm() * p.norm()) for t in range(len(x))]
                best = sims[0]
                for s in sims[1:]:
                    best = torch.maximum(best, s)
                z = z + weights[c, j] * best
            row.append(z)
        out.append(torch.stack(row))
    return torch.stack(out)


@pytest.mark.parametrize("b,t,d,c,j", [(3, 7, 5, 4, 2), (2, 1, 3, 3, 1), (4, 11, 9, 2, 5)])
def test_logits_and_gradients_match_the_naive_loop(b, t, d, c, j):
    g = torch.Generator().manual_seed(b * t)
    args = [
        torch.randn(b, t, d, generator=g, dtype=torch.float64),
        torch.randn(c, j, d, generator=g, dtype=torch.float64),
        torch.rand(c, j, generator=g, dtype=torch.float64) + 0.5,
        torch.randn(c, generator=g, dtype=torch.float64),
    ]
    ours = [a.clone().requires_grad_(True) for a in args]
    ref = [a.clone().requires_grad_(True) for a in args]
    z, z_ref = prototype_logits(*ours), naive_prototype_logits(*ref)
    assert z.shape == (b, c)
    torch.testing.assert_close(z, z_ref)
    upstream = torch.randn(b, c, generator=g, dtype=torch.float64)
    (z * upstream).sum().backward()
    (z_ref * upstream).sum().backward()
    for a, r in zip(ours, ref, strict=True):
        torch.testing.assert_close(a.grad, r.grad)


def one_token_task(n, num_classes=4, t=8, d=32, a=3.0, seed=0):
    """Only one token of each sample carries its class (+a u_c, at a random position); the other tokens are
    noise carrying -a u_c / (T - 1) between them, so the mean of a sample's tokens holds no class at all."""
    dirs = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(99)))[0][:num_classes]
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(num_classes, (n,), generator=g)
    tokens = torch.randn(n, t, d, generator=g) - a * dirs[y][:, None] / (t - 1)
    pos = torch.randint(t, (n,), generator=g)
    tokens[torch.arange(n), pos] = a * dirs[y] + 0.3 * torch.randn(n, d, generator=g)  # replaces its -a u_c / (T-1)
    return tokens, y


def test_separates_classes_carried_by_one_token_where_mean_pooling_cannot():
    x, y = one_token_task(300)
    xt, yt = one_token_task(500, seed=1)
    assert linear_probe(x.mean(1), y, xt.mean(1), yt).top1 < 0.4  # chance: 0.25
    assert prototypical_probe(x, y, xt, yt) > 0.95
    assert prototypical_probe(x, y, xt, yt, prototypes_per_class=1, batch_size=64, steps=400) > 0.9


def test_seeded_and_checked():
    x, y = one_token_task(60)
    xt, yt = one_token_task(40, seed=1)
    assert prototypical_probe(x, y, xt, yt, steps=20, seed=3) == prototypical_probe(x, y, xt, yt, steps=20, seed=3)
    with pytest.raises(ValueError, match=r"expected \(N, T, D\) and \(M, T', D\) tokens"):
        prototypical_probe(x.mean(1), y, xt, yt)
    with pytest.raises(ValueError, match="one label per sample"):
        prototypical_probe(x, y[:-1], xt, yt)
    with pytest.raises(ValueError, match="must be positive"):
        prototypical_probe(x, y, xt, yt, prototypes_per_class=0)

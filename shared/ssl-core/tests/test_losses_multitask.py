"""Multi-task weighting: fixed, Kendall et al.'s uncertainty weighting, and MGDA's min-norm weights against a
brute-force search over the simplex and the optimality conditions of the paper."""

import itertools

import pytest
import torch
from torch import nn

from ssl_core.errors import ConfigError
from ssl_core.losses import MultiTaskLoss, min_norm_weights


def brute_force_min_norm(grads, step=0.01):
    """min over a grid of the simplex of |sum_k a_k g_k|^2 (K <= 3)."""
    k = grads.shape[0]
    best = None
    ticks = torch.arange(0, 1 + step / 2, step, dtype=torch.float64)
    for combo in itertools.product(ticks.tolist(), repeat=k - 1):
        if sum(combo) > 1 + 1e-12:
            continue
        a = torch.tensor([*combo, 1 - sum(combo)], dtype=torch.float64)
        value = (a @ grads.double()).pow(2).sum().item()
        best = value if best is None else min(best, value)
    return best


@pytest.mark.parametrize("k,p,seed", [(2, 5, 0), (3, 4, 1), (3, 2, 2), (3, 10, 3)])
def test_min_norm_weights_are_optimal(k, p, seed):
    g = torch.randn(k, p, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    alpha = min_norm_weights(g, max_iter=2000, tol=1e-12)
    assert alpha.min() >= 0 and alpha.sum().item() == pytest.approx(1.0)
    norm2 = (alpha @ g).pow(2).sum().item()
    assert norm2 <= brute_force_min_norm(g) + 1e-9  # at least as good as every grid point
    # KKT of min_{a in simplex} a^T M a: (M a)_j >= a^T M a for all j, with equality where a_j > 0
    m_alpha = (g @ g.T) @ alpha
    assert (m_alpha >= norm2 - 1e-6).all()
    assert torch.allclose(m_alpha[alpha > 1e-4], torch.full_like(m_alpha[alpha > 1e-4], norm2), atol=1e-5)


def test_min_norm_known_cases():
    # two opposite gradients: the common descent direction is zero, reached at equal weights
    g = torch.tensor([[1.0, 2.0], [-1.0, -2.0]])
    torch.testing.assert_close(min_norm_weights(g), torch.tensor([0.5, 0.5]))
    # one gradient inside the cone of the others' minimum: all weight on the shortest when it dominates
    g = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    torch.testing.assert_close(min_norm_weights(g), torch.tensor([1.0, 0.0]))
    assert min_norm_weights(torch.randn(1, 3)).tolist() == [1.0]


def _model_and_losses(seed=0):
    torch.manual_seed(seed)
    backbone, head_a, head_b = nn.Linear(3, 4), nn.Linear(4, 1), nn.Linear(4, 2)
    x = torch.randn(10, 3)
    h = backbone(x)
    losses = {"a": head_a(h).pow(2).mean(), "b": (head_b(h) - 1).pow(2).mean()}
    return backbone, losses


def test_fixed_and_uncertainty_weighting():
    _, losses = _model_and_losses()
    total, weights = MultiTaskLoss(["a", "b"], weights={"b": 3.0})(losses)
    torch.testing.assert_close(total, losses["a"] + 3 * losses["b"])
    assert weights == {"a": 1.0, "b": 3.0}
    mtl = MultiTaskLoss(["a", "b"], weighting="uncertainty")
    with torch.no_grad():
        mtl.log_vars.copy_(torch.tensor([0.5, -1.0]))
    total, weights = mtl(losses)
    s = mtl.log_vars.detach()
    expected = sum(0.5 * torch.exp(-s[i]) * losses[t] + 0.5 * s[i] for i, t in enumerate("ab"))
    torch.testing.assert_close(total, expected)
    assert weights["b"] == pytest.approx(0.5 * torch.exp(torch.tensor(1.0)).item())
    # the learned log-variance converges to log L_k (the minimiser of 0.5 e^-s L + 0.5 s)
    fixed = {t: v.detach() for t, v in losses.items()}
    opt = torch.optim.SGD(mtl.parameters(), lr=0.5)
    for _ in range(300):
        opt.zero_grad()
        mtl(fixed)[0].backward()
        opt.step()
    torch.testing.assert_close(
        mtl.log_vars.detach(), torch.log(torch.stack([fixed["a"], fixed["b"]])), atol=1e-3, rtol=0
    )


@pytest.mark.parametrize("normalization", ["none", "l2", "loss", "loss+"])
def test_mgda_uses_min_norm_weights_of_the_shared_gradients(normalization):
    backbone, losses = _model_and_losses(1)
    shared = list(backbone.parameters())
    rows = []
    for t in ("a", "b"):
        g = torch.cat([x.reshape(-1) for x in torch.autograd.grad(losses[t], shared, retain_graph=True)])
        scale = {"none": 1.0, "l2": g.norm(), "loss": losses[t].detach(), "loss+": losses[t].detach() * g.norm()}
        rows.append(g / scale[normalization])
    expected = min_norm_weights(torch.stack(rows))
    total, weights = MultiTaskLoss(["a", "b"], weighting="mgda", grad_normalization=normalization)(losses, shared)
    assert [weights["a"], weights["b"]] == pytest.approx(expected.tolist(), abs=1e-6)
    torch.testing.assert_close(total, expected[0] * losses["a"] + expected[1] * losses["b"])
    total.backward()  # the weights are constants: the gradient is the weighted task gradients
    assert backbone.weight.grad is not None


def test_errors():
    with pytest.raises(ConfigError, match="weighting"):
        MultiTaskLoss(["a"], weighting="pcgrad")
    with pytest.raises(ConfigError, match="unknown tasks"):
        MultiTaskLoss(["a"], weights={"c": 1.0})
    with pytest.raises(ConfigError, match="shared_params"):
        MultiTaskLoss(["a", "b"], weighting="mgda")(_model_and_losses()[1])
    with pytest.raises(ConfigError, match="expects losses"):
        MultiTaskLoss(["a", "b"])({"a": torch.tensor(1.0)})

"""Several pretext losses on shared parameters: fixed weights, uncertainty weighting, or MGDA's min-norm weights."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
import torch.distributed as dist
from torch import nn

from ssl_core.distributed import get_world_size, is_initialized
from ssl_core.errors import ConfigError

WEIGHTINGS = ("fixed", "uncertainty", "mgda")
GRAD_NORMALIZATIONS = ("none", "l2", "loss", "loss+")


def _line_search(v1v1: torch.Tensor, v1v2: torch.Tensor, v2v2: torch.Tensor) -> torch.Tensor:
    """The ``gamma`` in [0, 1] minimising ``|gamma * v1 + (1 - gamma) * v2|^2`` (MGDA, Algorithm 1)."""
    denom = v1v1 + v2v2 - 2 * v1v2
    if denom <= 0:  # v1 == v2: every point of the segment is the same
        return torch.ones((), dtype=v1v1.dtype)
    return ((v2v2 - v1v2) / denom).clamp(0.0, 1.0)


def min_norm_weights(grads: torch.Tensor, max_iter: int = 250, tol: float = 1e-6) -> torch.Tensor:
    r"""The convex combination of task gradients with the smallest norm (MGDA-UB; Sener & Koltun, 2018).

    Solves :math:`\min_{\alpha \in \Delta_K} \lVert \sum_k \alpha_k g_k \rVert^2` by Frank-Wolfe
    (Algorithm 2 of the paper) on the Gram matrix :math:`M = G G^\top`: starting from the best pair of tasks
    (solved exactly by Algorithm 1), each step moves towards the task whose gradient has the smallest inner
    product with the current combination, by an exact line search. The direction :math:`-\sum_k \alpha_k g_k`
    decreases every task's loss unless the point is Pareto-stationary. The paper's code clips the line
    search to [0.001, 0.999]; this uses the exact minimiser in [0, 1].

    Args:
        grads: one flattened gradient per task (with respect to the shared parameters).
        max_iter: Frank-Wolfe iterations at most.
        tol: stop when the weights move less than this (L1).

    Shapes:
        - grads: ``(K, P)``
        - output: ``(K,)``, non-negative, summing to 1
    """
    if grads.ndim != 2 or grads.shape[0] < 1:
        raise ValueError(f"min_norm_weights expects (K, P) task gradients, got {tuple(grads.shape)}")
    k = grads.shape[0]
    m = (grads @ grads.T).double().cpu()  # (K, K): tiny, so the Frank-Wolfe loop runs on the CPU
    if k == 1:
        return torch.ones(1, dtype=grads.dtype, device=grads.device)
    # initial point: the best combination of two tasks
    best, alpha = None, None
    for i in range(k):
        for j in range(i + 1, k):
            gamma = _line_search(m[i, i], m[i, j], m[j, j])
            cost = gamma**2 * m[i, i] + 2 * gamma * (1 - gamma) * m[i, j] + (1 - gamma) ** 2 * m[j, j]
            if best is None or cost < best:
                best = cost
                alpha = torch.zeros(k, dtype=torch.float64)
                alpha[i], alpha[j] = gamma, 1 - gamma
    for _ in range(max_iter):
        m_alpha = m @ alpha
        t = int(torch.argmin(m_alpha))
        gamma = _line_search(alpha @ m_alpha, m_alpha[t], m[t, t])
        new = gamma * alpha
        new[t] += 1 - gamma
        change = (new - alpha).abs().sum()
        alpha = new
        if change < tol:
            break
    return alpha.to(dtype=grads.dtype, device=grads.device)


class MultiTaskLoss(nn.Module):
    r"""Combine the losses of several pretext tasks that share parameters into one scalar to minimise.

    - ``"fixed"``: :math:`L = \sum_k w_k L_k` with the given weights (1 by default).
    - ``"uncertainty"`` (Kendall, Gal & Cipolla, 2018, eq. 7): each task has a learned log-variance
      :math:`s_k = \log\sigma_k^2` (a parameter of this module, so the method's optimizer trains it) and
      :math:`L = \sum_k \tfrac12 e^{-s_k} L_k + \tfrac12 s_k`.
    - ``"mgda"`` (Sener & Koltun, 2018; ParetoGNN, Ju et al., 2023): the gradients of every task with respect
      to the shared parameters give the min-norm weights :math:`\alpha` (:func:`min_norm_weights`), and
      :math:`L = \sum_k \alpha_k L_k` with :math:`\alpha` held constant, whose gradient on the shared
      parameters is the min-norm (common descent) direction. Task gradients may first be normalised as
      in the MGDA and ParetoGNN code (``grad_normalization``: ``"l2"`` by their norm, ``"loss"`` by the
      loss, ``"loss+"`` by both). With ``gather_distributed=True`` the task gradients are averaged over
      ranks before solving, so every rank uses the weights of the global batch.

    Args:
        tasks: task names, the keys of the losses passed to ``forward``.
        weighting: ``"fixed"``, ``"uncertainty"`` or ``"mgda"``.
        weights: fixed weights per task (``"fixed"`` only; default 1 each).
        grad_normalization: ``"none"``, ``"l2"``, ``"loss"`` or ``"loss+"`` (``"mgda"`` only).
        gather_distributed: average task gradients over ranks (``"mgda"`` only).

    Shapes:
        - forward: ``losses`` maps each task to a scalar; returns the scalar total and the weights used.
    """

    def __init__(
        self,
        tasks: Sequence[str],
        weighting: str = "fixed",
        weights: Mapping[str, float] | None = None,
        grad_normalization: str = "none",
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        self.tasks = list(tasks)
        if not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(f"MultiTaskLoss needs distinct task names, got {self.tasks}")
        if weighting not in WEIGHTINGS:
            raise ConfigError(f"unknown weighting {weighting!r}; choose one of {', '.join(WEIGHTINGS)}")
        if grad_normalization not in GRAD_NORMALIZATIONS:
            raise ConfigError(
                f"unknown grad_normalization {grad_normalization!r}; choose one of {', '.join(GRAD_NORMALIZATIONS)}"
            )
        if weights is not None and weighting != "fixed":
            raise ConfigError(f"weights are only used by weighting='fixed', not {weighting!r}")
        unknown = set(weights or {}) - set(self.tasks)
        if unknown:
            raise ConfigError(f"weights name unknown tasks {sorted(unknown)}; the tasks are {self.tasks}")
        self.weighting = weighting
        self.fixed = {t: float((weights or {}).get(t, 1.0)) for t in self.tasks}
        self.grad_normalization = grad_normalization
        self.gather_distributed = gather_distributed
        if weighting == "uncertainty":
            self.log_vars = nn.Parameter(torch.zeros(len(self.tasks)))

    def _mgda_weights(self, losses: list[torch.Tensor], shared: list[nn.Parameter]) -> torch.Tensor:
        rows = []
        for loss in losses:
            grads = torch.autograd.grad(loss, shared, retain_graph=True, allow_unused=True)
            flat = torch.cat(
                [(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, shared, strict=True)]
            )
            rows.append(flat.detach())
        g = torch.stack(rows)  # (K, P)
        if self.gather_distributed and is_initialized():
            dist.all_reduce(g)
            g /= get_world_size()
        values = torch.stack([loss.detach() for loss in losses]).to(g.dtype)
        if self.grad_normalization == "l2":
            g = g / g.norm(dim=1, keepdim=True).clamp(min=1e-12)
        elif self.grad_normalization == "loss":
            g = g / values[:, None]
        elif self.grad_normalization == "loss+":
            g = g / (values[:, None] * g.norm(dim=1, keepdim=True)).clamp(min=1e-12)
        return min_norm_weights(g)

    def forward(
        self, losses: Mapping[str, torch.Tensor], shared_params: Iterable[nn.Parameter] | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Combine one step's task losses.

        Args:
            losses: one scalar loss per task name.
            shared_params: the parameters all tasks share (the backbone); required by ``"mgda"``.

        Returns:
            The total loss and the weight each task received this step (for logging).
        """
        if set(losses) != set(self.tasks):
            raise ConfigError(f"MultiTaskLoss expects losses for {self.tasks}, got {sorted(losses)}")
        values = [losses[t] for t in self.tasks]
        if self.weighting == "fixed":
            weights = torch.tensor([self.fixed[t] for t in self.tasks])
            total = sum(w * v for w, v in zip(weights.tolist(), values, strict=True))
        elif self.weighting == "uncertainty":
            precision = torch.exp(-self.log_vars)
            total = sum(0.5 * precision[i] * v + 0.5 * self.log_vars[i] for i, v in enumerate(values))
            weights = 0.5 * precision.detach()
        else:
            shared = [p for p in (shared_params or []) if p.requires_grad]
            if not shared:
                raise ConfigError("weighting='mgda' needs shared_params: the parameters every task's loss depends on")
            weights = self._mgda_weights(values, shared)
            total = sum(w * v for w, v in zip(weights.tolist(), values, strict=True))
        return total, {t: float(w) for t, w in zip(self.tasks, weights.tolist(), strict=True)}

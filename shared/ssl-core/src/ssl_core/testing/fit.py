"""Train a method on one fixed batch (the convergence check every modality's tests share), and build that batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import default_collate

from ssl_core.method import Method


def pretext_batch(method: Method, samples: Sequence[Any]) -> Any:
    """One training batch of ``samples`` as the trainer builds it: the method's pretext applied to each
    sample (drawing from torch's global generator, so seed it first), then the method's collate (torch's
    ``default_collate`` when it has none)."""
    pretext = method.pretext()
    return (method.collate() or default_collate)([pretext(s) for s in samples])


# schedule values for tests that run a method outside the trainer
DEFAULT_VALUES = {"lr": 1e-3, "weight_decay": 0.0, "ema_momentum": 0.99}


def begin_step(
    method: Method, step: int = 0, total_steps: int = 10, steps_per_epoch: int = 5, **values: float
) -> dict[str, float]:
    """Hand ``method`` step ``step`` as the trainer would: its schedules' values at that step (for a run of
    ``total_steps``), over :data:`DEFAULT_VALUES` and ``values``; returns the values given."""
    sched = {k: float(v[step]) for k, v in method.schedules(total_steps, steps_per_epoch).items()}
    given = {**DEFAULT_VALUES, **sched, **values}
    method.begin_step(step, given)
    return given


def fit_fixed_batch(
    method: Method,
    batch: Any,
    steps: int = 25,
    lr: float = 3e-3,
    optimizer: str = "adamw",
    values: Mapping[str, float] | None = None,
    reseed: int | None = None,
) -> list[float]:
    """Take ``steps`` optimizer steps on the same batch and return the loss of each step.

    A method whose objective is wired correctly drives its loss down on a batch it sees again and again;
    tests compare the mean of the last few losses with the first few.

    Args:
        method: the method, in training mode.
        batch: what the method's ``forward`` takes (already collated).
        steps: optimizer steps.
        lr: learning rate.
        optimizer: ``adamw`` or ``adam`` (over the parameters that require gradients).
        values: schedule values (e.g. ``{"ema_momentum": 0.99}``) over the method's own schedules (for a run of
            ``steps``) and :data:`DEFAULT_VALUES`, handed to ``begin_step`` before and ``after_optimizer_step``
            after every step.
        reseed: if given, ``torch.manual_seed(step % reseed)`` before each step, so a method's own randomness
            (masks, corruptions) cycles through the same few draws.
    """
    if optimizer not in ("adamw", "adam"):
        raise ValueError(f"optimizer must be 'adamw' or 'adam', got {optimizer!r}")
    params = [p for p in method.parameters() if p.requires_grad]
    opt = (torch.optim.AdamW if optimizer == "adamw" else torch.optim.Adam)(params, lr=lr)
    losses = []
    for step in range(steps):
        if reseed is not None:
            torch.manual_seed(step % reseed)
        given = begin_step(method, step, steps, steps, **(values or {}))
        loss = method(batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        method.after_optimizer_step(step, given)
        losses.append(loss.item())
    return losses


def without_gradient(module: torch.nn.Module, nonzero: bool = True) -> list[str]:
    """The names of ``module``'s trainable parameters that a backward pass left without a gradient: ``None``, or
    (``nonzero=True``) all zeros or not finite. Tests assert that the list is empty (every parameter learns).
    """
    return [
        name
        for name, p in module.named_parameters()
        if p.requires_grad
        and (p.grad is None or (nonzero and not (bool(torch.isfinite(p.grad).all()) and bool(p.grad.any()))))
    ]

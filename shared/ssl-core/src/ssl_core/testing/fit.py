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
        values: the schedule values passed to ``after_optimizer_step`` (e.g. ``{"ema_momentum": 0.99}``);
            the hook is called after every step either way.
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
        loss = method(batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        method.after_optimizer_step(step, dict(values or {}))
        losses.append(loss.item())
    return losses

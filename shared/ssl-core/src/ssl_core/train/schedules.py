"""Per-iteration schedules, computed once as arrays (the DINOv2 habit) instead of updated ad hoc."""

from __future__ import annotations

import numpy as np


def cosine_schedule(
    base: float, final: float, total_steps: int, warmup_steps: int = 0, warmup_start: float = 0.0
) -> np.ndarray:
    """Linear warm-up from ``warmup_start`` to ``base``, then half-cosine decay from ``base`` to ``final``.

    Used for the learning rate (SimCLR, MoCo v3, DINO), weight decay (DINO: 0.04 -> 0.4) and the EMA
    momentum (BYOL: 0.996 -> 1).

    Args:
        base: value at the end of the warm-up.
        final: value at the last step.
        total_steps: length of the schedule.
        warmup_steps: steps of linear warm-up (capped at ``total_steps``).
        warmup_start: value at step 0 of the warm-up.

    Shapes:
        - output: ``(total_steps,)`` float64; entry ``t`` is the value used by step ``t``.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    warmup_steps = max(0, min(warmup_steps, total_steps))
    warm = np.linspace(warmup_start, base, warmup_steps, endpoint=False)
    n = total_steps - warmup_steps
    # progress goes 0 -> 1 over the decay, so the last step takes exactly `final`
    progress = np.arange(n) / max(n - 1, 1)
    decay = final + 0.5 * (base - final) * (1 + np.cos(np.pi * progress))
    return np.concatenate([warm, decay])

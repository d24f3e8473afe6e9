"""Per-step mask-ratio schedules for curriculum masking (harder masking as training goes on)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ssl_core.errors import ConfigError


def mask_ratio_schedule(start: float, end: float, total_steps: int, shape: str = "linear") -> np.ndarray:
    """A mask ratio moving smoothly from ``start`` to ``end`` over training (curriculum masking: harder
    masking as training goes on, the principle of BIOptimus; Pavlova & Makhlouf, 2023).

    ``shape="linear"`` interpolates linearly; ``"cosine"`` follows a half cosine (slow at both ends).
    Return it from :meth:`ssl_core.method.Method.schedules`; the pretext reads the step's value. For
    BIOptimus-style phases with a fixed ratio each, use :func:`phase_schedule`.

    Args:
        start: ratio at step 0.
        end: ratio at the last step.
        total_steps: length of the schedule.
        shape: ``"linear"`` or ``"cosine"``.

    Shapes:
        - output: ``(total_steps,)`` float64
    """
    if total_steps < 1:
        raise ConfigError(f"total_steps must be positive, got {total_steps}")
    for name, value in (("start", start), ("end", end)):
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"mask ratio {name} must lie in [0, 1], got {value}")
    progress = np.arange(total_steps) / max(total_steps - 1, 1)
    if shape == "linear":
        weight = progress
    elif shape == "cosine":
        weight = 0.5 * (1 - np.cos(np.pi * progress))
    else:
        raise ConfigError(f"unknown mask ratio schedule shape {shape!r}; use 'linear' or 'cosine'")
    return start + (end - start) * weight


def phase_schedule(values: Sequence[float], fractions: Sequence[float], total_steps: int) -> np.ndarray:
    """A piecewise-constant schedule of training phases (BIOptimus; Pavlova & Makhlouf, 2023).

    BIOptimus pre-trains in four phases of increasing difficulty: token masking at 15%, whole-word masking
    at 15%, whole-word masking at 20%, then 20% without the 80/10/10 corruption. This gives the per-step
    value of one such setting (a mask ratio, or a 0/1 switch), with phase ``i`` lasting
    ``fractions[i]`` of the steps; boundaries are rounded to whole steps.

    Args:
        values: the value of each phase, e.g. ``[0.15, 0.15, 0.2, 0.2]``.
        fractions: the share of the steps of each phase (positive, summing to 1).
        total_steps: length of the schedule.

    Shapes:
        - output: ``(total_steps,)`` float64
    """
    if total_steps < 1:
        raise ConfigError(f"total_steps must be positive, got {total_steps}")
    if len(values) != len(fractions) or not values:
        raise ConfigError(
            f"phase_schedule needs one fraction per value, got {len(values)} values and {len(fractions)} fractions"
        )
    fractions = np.asarray(fractions, dtype=np.float64)
    if (fractions <= 0).any() or abs(fractions.sum() - 1.0) > 1e-6:
        raise ConfigError(f"phase fractions must be positive and sum to 1, got {fractions.tolist()}")
    bounds = np.round(np.cumsum(fractions) * total_steps).astype(int)
    phase = np.searchsorted(bounds, np.arange(total_steps), side="right")
    return np.asarray(values, dtype=np.float64)[np.minimum(phase, len(values) - 1)]

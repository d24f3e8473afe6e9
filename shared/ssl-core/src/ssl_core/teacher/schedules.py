"""Per-step schedules of teacher hyper-parameters (the EMA momentum schedule is the Trainer's)."""

from __future__ import annotations

import numpy as np

from ssl_core.errors import ConfigError


def teacher_temperature_schedule(
    warmup_temperature: float, temperature: float, total_steps: int, warmup_steps: int
) -> np.ndarray:
    """DINO's teacher temperature: linear warm-up, then constant (Caron et al., 2021, Sec. 3.1 and App.).

    A low teacher temperature sharpens the targets; starting lower (0.04) and warming up to 0.07 over the
    first 30 epochs keeps early training stable. Return it from :meth:`ssl_core.method.Method.schedules`
    and pass the step's value to :class:`ssl_core.losses.DINOLoss` / :class:`ssl_core.losses.IBOTPatchLoss`.

    Args:
        warmup_temperature: value at step 0 (DINO: 0.04).
        temperature: value at the end of the warm-up and after it (DINO: 0.04 to 0.07).
        total_steps: length of the schedule.
        warmup_steps: steps of the linear warm-up (capped at ``total_steps``).

    Shapes:
        - output: ``(total_steps,)`` float64; entry ``t`` is the temperature of step ``t``.
    """
    if total_steps < 1:
        raise ConfigError(f"total_steps must be positive, got {total_steps}")
    if not (warmup_temperature > 0 and temperature > 0):
        raise ConfigError(f"teacher temperatures must be positive, got {warmup_temperature} and {temperature}")
    warmup_steps = max(0, min(warmup_steps, total_steps))
    # as DINO's np.linspace(warmup, final, n): the last warm-up step already takes the final value
    warm = np.linspace(warmup_temperature, temperature, warmup_steps)
    return np.concatenate([warm, np.full(total_steps - warmup_steps, float(temperature))])

"""Helpers for the cross-package tests: run the `selfsup` command in a subprocess (on sys.path through
the `pythonpath` setting of pytest)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# A run small enough for tests: scikit-learn digits (1,437 train / 360 test images), a width-8 ResNet.
TINY = [
    "--set",
    "data.name=digits",
    "train.batch_size=64",
    "method.backbone.width=8",
    "train.max_minutes=null",
    "probe.train_size=400",
    "train.progress=false",
]


def run_selfsup(
    *args: str, cwd: Path | None = None, timeout: float = 300, check: bool = False, env: dict | None = None
) -> subprocess.CompletedProcess:
    """``python -m ssl_core ARGS`` (the `selfsup` command) with captured output."""
    proc = subprocess.run(
        [sys.executable, "-m", "ssl_core", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"selfsup {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc

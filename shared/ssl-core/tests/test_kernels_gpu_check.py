"""benchmarks/gpu_check.sh, the script for CUDA machines, runs end to end in its CPU dry-run mode.

The dry run executes the same checks (Triton vs the torch paths, for NT-Xent and the point operators) at
toy sizes under TRITON_INTERPRET=1, so the script cannot rot between visits to a GPU.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="Triton is not installed")
def test_gpu_check_dry_run_passes():
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "all checks passed" in proc.stderr
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ")][1:]  # rows without the header
    kernels = {row.split("|")[1].strip().split()[0] for row in table}
    assert kernels == {"nt_xent", "fps", "knn", "ball_query", "chamfer"}
    triton_rows = [row for row in table if "| triton |" in row]
    assert triton_rows and all("| ok" in row for row in triton_rows)

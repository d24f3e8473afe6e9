"""The same command under torchrun with two CPU processes (gloo)."""

import csv
import json
import os
import subprocess
import sys

import pytest

from helpers import TINY
from ssl_core.train import latest_checkpoint

pytestmark = [pytest.mark.distributed, pytest.mark.slow]


def test_pretrain_under_torchrun(tmp_path):
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "ssl_core",
        "pretrain",
        "vision/simclr",
        "--out",
        str(run),
        "--max-steps",
        "3",
        *TINY,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es)" in proc.stderr and proc.stderr.count("selfsup: vision/simclr") == 1  # rank 0 speaks
    assert latest_checkpoint(run / "checkpoints").name == "step_00000003"
    with open(run / "log.csv") as f:
        assert len(list(csv.DictReader(f))) == 3
    assert list(json.loads((run / "metrics.json").read_text())) == ["pretrained", "random_init", "raw_input"]

"""The `selfsup` command end to end: list, pretrain, eval, export, resume."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from helpers import TINY, run_selfsup
from ssl_core.testing.export_checks import assert_export_matches_run
from ssl_core.train import latest_checkpoint, list_checkpoints


def test_console_script_is_installed():
    script = shutil.which("selfsup") or os.path.join(os.path.dirname(sys.executable), "selfsup")
    proc = subprocess.run([script, "list"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "vision/simclr" in proc.stdout


def test_pretrain_eval_export(tmp_path):
    run = tmp_path / "run"
    proc = run_selfsup("pretrain", "vision/simclr", "--out", str(run), "--max-steps", "3", *TINY, check=True)
    for name in ("config.yaml", "backbone.json", "log.csv", "metrics.json", "summary.json", "plots/loss.png"):
        assert (run / name).is_file(), name
    assert any((run / "tb").iterdir())
    assert latest_checkpoint(run / "checkpoints").name == "step_00000003"
    metrics = json.loads((run / "metrics.json").read_text())
    assert list(metrics) == ["pretrained", "random_init", "raw_input"]
    for row in metrics.values():
        assert set(row) == {"knn_top1", "linear_top1"} and all(0 <= v <= 1 for v in row.values())
    assert "random_init" in proc.stdout and "kNN top-1" in proc.stdout
    with open(run / "log.csv") as f:
        assert [r["step"] for r in csv.DictReader(f)] == ["1", "2", "3"]

    (run / "metrics.json").unlink()
    proc = run_selfsup("eval", str(run), check=True)
    assert json.loads((run / "metrics.json").read_text()) == metrics  # same checkpoint, same probes
    assert "pretrained" in proc.stdout

    out = tmp_path / "export"
    run_selfsup("export", str(run), str(out), check=True)
    assert_export_matches_run(run, out, n=8)
    exported = json.loads((out / "config.json").read_text())
    assert exported["modality"] == "vision" and exported["input"]["image_size"] == 28


def _losses(run):
    with open(run / "log.csv") as f:
        return [(r["step"], r["loss"]) for r in csv.DictReader(f)]


def test_interrupted_run_resumes_on_the_same_trajectory(tmp_path):
    common = ["--max-steps", "8", *TINY, "train.checkpoint_every=2", "probe.enabled=false"]
    run_selfsup("pretrain", "vision/simclr", "--out", str(tmp_path / "straight"), *common, check=True)

    run = tmp_path / "interrupted"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ssl_core", "pretrain", "vision/simclr", "--out", str(run), *common],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.time() + 240
    while not (run / "checkpoints" / "step_00000002").exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[1]
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # Ctrl-C: finish the step, checkpoint, exit
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    stopped = latest_checkpoint(run / "checkpoints")
    assert "interrupted" in err and int(stopped.name.split("_")[1]) < 8

    run_selfsup("pretrain", "vision/simclr", "--out", str(run), "--resume", check=True)
    assert latest_checkpoint(run / "checkpoints").name == "step_00000008"
    assert _losses(run) == _losses(tmp_path / "straight")


def _one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("selfsup: error: "), proc.stderr
    for n in needles:
        assert n in last, last
    return last


def test_errors_are_one_line(tmp_path):
    _one_line_error(run_selfsup("pretrain", "vision/simclr", "--set", "train.lr"), "expects key=value")
    _one_line_error(run_selfsup("pretrain", "vision/simclr", "--set", "train.lrr=0.1"), "lrr")
    _one_line_error(run_selfsup("pretrain", "vision/simclr", "--set", "train.lr=fast"), "fast")
    _one_line_error(run_selfsup("pretrain", "vision/simclrr"), "unknown method", "did you mean vision/simclr")
    _one_line_error(run_selfsup("pretrain", "audio2/x"), "unknown modality")
    _one_line_error(run_selfsup("pretrain", "vision/simclr", "--max-steps", "many"), "invalid int value")
    (tmp_path / "empty").mkdir()
    _one_line_error(
        run_selfsup("pretrain", "vision/simclr", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "r1")),
        "no images found",
    )
    _one_line_error(run_selfsup("pretrain", "vision/simclr", "--data", str(tmp_path / "missing")), "not found")
    broken = tmp_path / "broken"
    for c in ("a", "b"):
        (broken / c).mkdir(parents=True)
        for i in range(40):
            (broken / c / f"{i}.png").write_bytes(b"\x89PNG but not really")
    _one_line_error(
        run_selfsup(
            "pretrain",
            "vision/simclr",
            "--data",
            str(broken),
            "--out",
            str(tmp_path / "r2"),
            *TINY[:1],
            "train.batch_size=8",
            "train.progress=false",
        ),
        "cannot read image",
    )
    _one_line_error(run_selfsup("eval", str(tmp_path / "nope")), "run folder not found")
    _one_line_error(
        run_selfsup("pretrain", "vision/simclr", "--resume", "--out", str(tmp_path / "empty")), "no checkpoint"
    )


@pytest.mark.slow  # a pretraining and three more commands
def test_a_damaged_checkpoint_is_named_with_the_previous_one(tmp_path):
    """eval, export and --resume on a run whose latest model.safetensors was cut short (a full disk, a
    killed copy): one line naming it, saying it is damaged, and how to use the previous checkpoint."""
    run = tmp_path / "run"
    common = ["--max-steps", "2", *TINY, "train.checkpoint_every=1", "probe.enabled=false"]
    run_selfsup("pretrain", "vision/simclr", "--out", str(run), *common, check=True)
    previous, latest = list_checkpoints(run / "checkpoints")
    model = latest / "model.safetensors"
    with open(model, "r+b") as f:
        f.truncate(model.stat().st_size // 2)
    damaged = f"checkpoint {latest} is damaged: model.safetensors is truncated"
    intact = f"the previous checkpoint {previous} is intact"
    out = tmp_path / "export"
    for args, fix in [
        (("eval", str(run)), f"evaluate it with `selfsup eval {run} --checkpoint {previous}`"),
        (("export", str(run), str(out)), f"export it with `selfsup export {run} {out} --checkpoint {previous}`"),
        (
            ("pretrain", "vision/simclr", "--out", str(run), "--resume"),
            f"move {latest.name} out of {latest.parent} and resume again to continue from {previous}",
        ),
    ]:
        _one_line_error(run_selfsup(*args), damaged, intact, fix)


def test_all_nan_images_are_refused_before_training(tmp_path):
    import numpy as np

    np.save(tmp_path / "nan.npy", np.full((64, 28, 28), np.nan, np.float32))
    proc = run_selfsup("pretrain", "vision/simclr", "--data", str(tmp_path / "nan.npy"), "--out", str(tmp_path / "r"))
    _one_line_error(proc, f"{tmp_path / 'nan.npy'} holds 50,176 non-finite values (50,176 NaN, 0 infinite)")
    assert not (tmp_path / "r" / "checkpoints").exists()

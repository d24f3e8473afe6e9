"""The Fashion-MNIST table's harness (benchmarks/vision_table.py, benchmarks/vision_lightly.py): the table
it renders from its results, and every lightly version training a couple of steps on tiny images."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

from helpers import ROOT

BENCH = ROOT / "benchmarks"


def load(name: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def result(row: str, impl: str, seed: int, knn: float, linear: float, **extra) -> dict:
    return {"row": row, "impl": impl, "epochs": 0.5, "seed": seed, "knn_top1": knn, "linear_top1": linear, **extra}


def table_rows(text: str) -> dict[str, list[str]]:
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()[2:]]
    return {r[0]: r for r in rows}


def test_render_averages_seeds_and_skips_smoke_and_failed_runs():
    vt = load("vision_table")
    results = [
        result("simclr", "ours", 0, 0.70, 0.80),
        result("simclr", "ours", 0, 0.76, 0.80),  # a rerun of seed 0: the latest counts
        result("simclr", "ours", 1, 0.74, 0.78),
        result("simclr", "ours", 2, 0.10, 0.10, smoke=True),
        result("simclr", "lightly", 0, 0.73, 0.81),
        result("simclr", "lightly", 1, 0.75, 0.79),
        {"row": "simclr", "impl": "lightly", "epochs": 0.5, "seed": 2, "error": "RuntimeError()"},
        result("moco_v3", "ours", 0, 0.71, 0.72),
        {"row": "raw pixels", "impl": "baseline", "knn_top1": 0.8192, "linear_top1": 0.8338, "knn5_10k_top1": 0.814},
    ]
    rows = table_rows(vt.render(results))
    # ours: (0.76 + 0.74) / 2 = 75%, lightly (0.73 + 0.75) / 2 = 74%: +1.00 points
    assert rows["simclr"] == ["simclr", "0.5", "2 / 2", "75.00%", "79.00%", "74.00%", "80.00%", "+1.00", "-1.00"]
    assert rows["moco_v3"][2:5] == ["1", "71.00%", "72.00%"] and rows["moco_v3"][5:] == ["-"] * 4
    pixels = next(r for name, r in rows.items() if name.startswith("raw pixels"))
    assert "81.40%" in pixels[0] and pixels[3:5] == ["81.92%", "83.38%"]


def test_render_speed_gives_the_ratio_of_each_row():
    vt = load("vision_table")
    text = vt.render_speed(
        [
            {
                "row": "simclr",
                "impl": "speed",
                "ours_images_per_s": 300.0,
                "lightly_images_per_s": 250.0,
                "speed_ratio": 1.2,
            },
            {"row": "simmim", "impl": "speed", "ours_images_per_s": 150.0},
        ]
    )
    rows = table_rows(text)
    assert rows["simclr"] == ["simclr", "300", "250", "1.20x"]
    assert rows["simmim"] == ["simmim", "150", "-", "-"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["simclr", "moco_v2", "byol", "simsiam", "nnclr", "barlow_twins", "vicreg", "swav",
                                  "dino", "mae"])  # fmt: skip
def test_lightly_version_trains_on_tiny_images(name):
    """Each lightly version builds from our recipe's config and takes finite steps (the harness must not rot
    while lightly or our configs change)."""
    vt = load("vision_table")
    vl = load("vision_lightly")
    from ssl_vision.data.images import ImageInfo, ImageTensors

    _, cfg = vt.row_config(name, "train.batch_size=8")
    lightly_name = vt.ROWS[name][2]
    info = ImageInfo(channels=1, image_size=28, mean=[0.3], std=[0.3], num_classes=10)
    pixels = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    images = ImageTensors(pixels)
    run = vl.train_lightly(lightly_name, cfg.method, cfg.train, info, images, total_steps=2)
    assert run.steps == 2 and len(run.step_s) == 2
    assert torch.isfinite(torch.tensor(run.last_loss))
    with torch.no_grad():
        emb = run.model.backbone(torch.randn(3, 1, 28, 28))
    assert emb.shape[0] == 3 and emb.ndim == 2


def test_default_runs_harness_records_a_run_and_tables_it(tmp_path):
    """defaults.py runs a recipe in a child process and records its minutes, peak memory, steps and probes
    (here a smoke run: 3 steps on scikit-learn's digits, recorded as smoke and kept out of the table); the
    table renders the latest real record of each recipe, and what set its length."""
    d = load("defaults")
    smoke = ["data.name=digits", "train.max_steps=3", "train.batch_size=32", "probe.train_size=500"]
    rec = d.run_one("vision", "simclr", tmp_path / "runs", tmp_path / "r.jsonl", smoke, smoke=True)
    assert rec["smoke"] and rec["steps"] == 3 and rec["stop_reason"] == "completed" and rec["planned_steps"] == 3
    assert 0.05 < rec["peak_rss_gib"] < 16 and rec["wall_minutes"] > 0 and rec["samples_per_s"] > 0
    assert 0 <= rec["metrics"]["pretrained"]["knn_top1"] <= 1 and "linear_top1" in rec["metrics"]["random_init"]
    assert (tmp_path / "runs" / "vision" / "simclr" / "plots" / "embeddings.png").exists()
    with pytest.raises(SystemExit, match="not empty"):  # a second run never mixes into the first's folder
        d.run_one("vision", "simclr", tmp_path / "runs", tmp_path / "r.jsonl", smoke, smoke=True)
    real = {**rec, "smoke": False, "steps": 468, "total_steps": 468, "planned_steps": 468, "planned_epochs": 2}
    cut = {**real, "steps": 234, "total_steps": 234, "max_minutes": 3.5}
    text = d.render([real, {**rec, "recipe": "byol", "smoke": False}, rec, cut, {**real, "modality": "text"}], "vision")
    rows = [line.split(" | ") for line in text.splitlines()[2:]]
    assert [r[0] for r in rows] == ["| vision/simclr", "| vision/byol"]  # first-seen order; smoke, text left out
    assert rows[0][1] == "234" and rows[0][2] == "the 3.5-min cap"  # the latest record of simclr
    assert d.render([real], "vision").splitlines()[2].split(" | ")[2] == "2 epochs"
    # a tagged variant (its --set) is a row of its own; the table can be limited to some recipes
    text = d.render([real, {**real, "tag": "ce"}, {**real, "recipe": "byol"}], "vision", ["simclr"])
    assert [line.split(" | ")[0] for line in text.splitlines()[2:]] == ["| vision/simclr", "| vision/simclr [ce]"]
    cv = {**real, "metrics": {k: {"cv_top1": 0.8, "cv_std": 0.05} for k in ("pretrained", "random_init", "raw_input")}}
    assert "80.00 ± 5.00%" in d.render([cv], "vision") and "cross-val" in d.render([cv], "vision")
    # audio's second baseline row and its extra probe columns get columns of their own
    row = {"knn_top1": 0.5, "linear_top1": 0.6}
    metrics = {k: {**row, "frame_linear": 0.7} for k in ("pretrained", "random_init", "raw_input")}
    audio = {**real, "modality": "audio", "metrics": {**metrics, "mfcc_stats": {**row, "frame_linear": 0.2}}}
    header, _, line = d.render([audio], "audio").splitlines()
    assert "mfcc_stats kNN / linear" in header and "frame_linear: pretrained / untrained / raw" in header
    assert line.rstrip(" |").endswith("50.00% / 60.00% | 70.00% / 70.00% / 70.00%"), line

"""Every vision recipe's default run, measured: ``selfsup pretrain vision/<recipe>`` with nothing changed.

Each recipe runs in its own process, one after another (run them on an otherwise quiet machine: the table
reports minutes and images per second), into ``runs/defaults/<recipe>/``; its time, peak memory (the
process's maximum resident set, from ``os.wait4``) and the run folder's ``summary.json`` and ``metrics.json``
are appended to a JSON-lines results file, and ``table`` renders the latest record of each recipe::

    uv run python benchmarks/vision_defaults.py run                  # all twelve, about an hour
    uv run python benchmarks/vision_defaults.py run vicreg byol      # some of them
    uv run python benchmarks/vision_defaults.py table                # markdown, from the results file

The table is in ``packages/ssl-vision/README.md`` ("The default runs, measured").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import machine_line, markdown_table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "vision_defaults.jsonl"
RUNS = ROOT / "runs" / "defaults"
N_TRAIN = 60_000  # the Fashion-MNIST training images every default run pretrains on
RECIPES = ["simclr", "moco_v2", "moco_v3", "byol", "simsiam", "nnclr", "barlow_twins", "vicreg", "swav", "dino",
           "mae", "simmim"]  # fmt: skip


def run_one(recipe: str, runs: Path, results: Path, smoke: Sequence[str] = ()) -> dict:
    """Pretrain ``vision/<recipe>`` with its defaults in a child process; append and return its record.

    ``smoke``: settings that make a quick check of the harness instead (``KEY=VALUE``, as ``--set`` takes);
    its record says ``"smoke": true`` and stays out of the table."""
    out = runs / recipe
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty: move it away (or pass another --runs) so the run starts fresh")
    cmd = [sys.executable, "-m", "ssl_core", "pretrain", f"vision/{recipe}", "--out", str(out),
           "--set", "train.progress=false", *smoke]  # fmt: skip
    print(f"{datetime.now(UTC):%H:%M:%S} vision/{recipe}: {' '.join(cmd[1:])}", flush=True)
    runs.mkdir(parents=True, exist_ok=True)
    where, t0 = machine_line(), time.perf_counter()
    with open(runs / f"{recipe}.log", "w") as log:
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)  # the child's own rusage: its peak resident set
    wall, code = time.perf_counter() - t0, os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"vision/{recipe} failed (exit {code}): see {runs / recipe}.log")
    summary = json.loads((out / "summary.json").read_text())
    train = yaml.safe_load((out / "config.yaml").read_text())["train"]
    record = {
        "recipe": recipe,
        "smoke": bool(smoke),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": where,
        "wall_minutes": round(wall / 60, 2),
        "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2),  # ru_maxrss is in KiB on Linux
        "batch_size": train["batch_size"],
        "planned_epochs": train["epochs"],
        **{k: summary[k] for k in ("steps", "stop_reason", "train_minutes", "samples_per_s")},
        "metrics": json.loads((out / "metrics.json").read_text()),
    }
    results.parent.mkdir(parents=True, exist_ok=True)
    with open(results, "a") as f:
        f.write(json.dumps(record) + "\n")
    return record


def render(records: list[dict]) -> str:
    """The markdown table of the latest record of each recipe (epochs over the 60,000 training images; the
    length is set by the recipe's epochs, or by its minute cap when that stopped the run short of them)."""
    latest = {r["recipe"]: r for r in records if not r.get("smoke")}
    pct = lambda x: f"{100 * x:.2f}%"  # noqa: E731
    rows = []
    for name in [r for r in RECIPES if r in latest]:
        r = latest[name]
        m, untrained = r["metrics"]["pretrained"], r["metrics"]["random_init"]
        epochs, planned = r["steps"] * r["batch_size"] / N_TRAIN, r["planned_epochs"]
        short = r["steps"] < planned * (N_TRAIN // r["batch_size"])
        length = "minute cap" if short else f"{planned:g} epoch" + ("s" if planned != 1 else "")
        cells = [f"vision/{name}", f"{r['steps']} ({epochs:.2f})", length, f"{r['train_minutes']:.1f}",
                 f"{r['wall_minutes']:.1f}", f"{r['samples_per_s']:.0f}", f"{r['peak_rss_gib']:.1f} GiB",
                 pct(m["knn_top1"]), pct(m["linear_top1"]),
                 f"{pct(untrained['knn_top1'])} / {pct(untrained['linear_top1'])}"]  # fmt: skip
        rows.append(cells)
    header = ["recipe", "steps (epochs)", "length set by", "training min", "wall min", "images/s", "peak memory", "kNN",
              "linear", "untrained kNN / linear"]  # fmt: skip
    return markdown_table(header, rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run recipes with their defaults, one after another")
    r.add_argument("recipes", nargs="*", metavar="RECIPE", help=f"some of {', '.join(RECIPES)} (default: all)")
    r.add_argument("--runs", type=Path, default=RUNS, help="folder of the run folders (default: runs/defaults)")
    t = sub.add_parser("table", help="markdown table of the latest record of each recipe")
    for s in (r, t):
        s.add_argument("--results", type=Path, default=RESULTS)
    a = p.parse_args(argv)
    if a.cmd == "run":
        if unknown := [r for r in a.recipes if r not in RECIPES]:
            p.error(f"unknown recipe {', '.join(unknown)}: choose from {', '.join(RECIPES)}")
        for recipe in a.recipes or RECIPES:
            rec = run_one(recipe, a.runs, a.results)
            m = rec["metrics"]["pretrained"]
            print(f"  {rec['steps']} steps, {rec['train_minutes']:.1f} min training, {rec['wall_minutes']:.1f} min "
                  f"wall, {rec['peak_rss_gib']:.1f} GiB, kNN {m['knn_top1']:.4f}, linear {m['linear_top1']:.4f}",
                  flush=True)  # fmt: skip
    else:
        if not a.results.exists():
            raise SystemExit(f"no results yet at {a.results}: run `vision_defaults.py run` first")
        print(render([json.loads(line) for line in a.results.read_text().splitlines() if line.strip()]))


if __name__ == "__main__":
    main()

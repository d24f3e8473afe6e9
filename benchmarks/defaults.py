"""Every recipe's default run, measured: ``selfsup pretrain <modality>/<recipe>`` with nothing changed.

The README tables of the default runs come from here, for every modality. Each recipe runs in its own
process, one after another (on an otherwise quiet machine: the table reports minutes), into
``runs/defaults/<modality>/<recipe>[-<data>]/``; its wall time, peak memory (the process's maximum resident
set, from ``os.wait4``) and the run folder's ``summary.json``, ``metrics.json`` and budget are appended to a
JSON-lines results file, and ``table`` renders the latest record of each recipe::

    uv run python benchmarks/defaults.py run --modality vision                  # every vision recipe
    uv run python benchmarks/defaults.py run --modality vision vicreg byol      # some of them
    uv run python benchmarks/defaults.py run --modality graph --data mutag cuneiform --rescore svm_rbf
    uv run python benchmarks/defaults.py run --modality vision sla --tag ce --set method.mode=ce   # a variant
    uv run python benchmarks/defaults.py table --modality vision                # markdown, from the results
    uv run python benchmarks/defaults.py table --modality vision sla mfm        # the rows of some recipes

The table's columns follow the probes the recipes ran: kNN and linear top-1 (vision, text) or the
cross-validated accuracy (graph), each beside the untrained network and the raw input. ``--rescore
svm_rbf`` also scores the run's embeddings with another cross-validated classifier, on the same folds (for
graphs: GraphMAE's RBF SVM, the protocol of its published figures).
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
RESULTS = ROOT / "benchmarks" / "results" / "defaults.jsonl"
RUNS = ROOT / "runs" / "defaults"


def recipes(modality: str) -> list[str]:
    """The registered recipes of an installed modality, in its registry's order."""
    from ssl_core.registry import get_modality

    return list(get_modality(modality).recipes)


def rescore(run: Path, classifier: str) -> dict[str, dict[str, float]]:
    """The run's pretrained backbone, its untrained twin and the raw input, scored by ``classifier``'s
    cross-validation (the run's folds and seed) on all labelled inputs."""
    import torch

    from ssl_core.eval import cross_val_accuracy, embed_inputs
    from ssl_core.run import build_method, open_run
    from ssl_core.train import latest_checkpoint, load_weights

    modality, recipe, cfg = open_run(run)
    bundle = modality.load_data(cfg.data)
    trained, untrained = build_method(recipe, cfg, bundle), build_method(recipe, cfg, bundle)
    load_weights(trained, latest_checkpoint(run / "checkpoints"))
    inputs = list(bundle.probe_train.inputs) + list(bundle.probe_test.inputs)
    labels = torch.cat([bundle.probe_train.labels, bundle.probe_test.labels])
    rows = {"pretrained": trained.eval().embed, "random_init": untrained.eval().embed}
    if bundle.raw_features is not None:
        rows["raw_input"] = bundle.raw_features
    out = {}
    for name, fn in rows.items():
        emb = embed_inputs(fn, inputs, batch_size=256, collate_fn=bundle.collate_fn)
        r = cross_val_accuracy(emb, labels, folds=cfg.probe.cv_folds or 10, classifier=classifier, seed=cfg.probe.seed)
        out[name] = {"cv_top1": round(r.mean, 4), "cv_std": round(r.std, 4)}
    return out


def run_one(
    modality: str,
    recipe: str,
    runs: Path,
    results: Path,
    settings: Sequence[str] = (),
    data: str | None = None,
    rescore_with: str | None = None,
    smoke: bool = False,
    tag: str | None = None,
) -> dict:
    """Pretrain ``<modality>/<recipe>`` with its defaults (plus ``settings``, ``KEY=VALUE`` as ``--set`` takes;
    ``data``: ``data.name``) in a child process; append and return its record. ``smoke`` records a check
    of the harness itself, kept out of the table; ``tag`` names a variant of the recipe (its settings), which
    gets a folder and a table row of its own."""
    out = runs / modality / "-".join(x for x in (recipe, data, tag) if x)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty: move it away (or pass another --runs) so the run starts fresh")
    sets = [*([f"data.name={data}"] if data else []), "train.progress=false", *settings]
    cmd = [sys.executable, "-m", "ssl_core", "pretrain", f"{modality}/{recipe}", "--out", str(out), "--set", *sets]
    print(f"{datetime.now(UTC):%H:%M:%S} {modality}/{recipe}: {' '.join(cmd[1:])}", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    where, t0 = machine_line(), time.perf_counter()
    with open(out.parent / f"{out.name}.log", "w") as log:
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)  # the child's own rusage: its peak resident set
    wall, code = time.perf_counter() - t0, os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{modality}/{recipe} failed (exit {code}): see {out.parent / out.name}.log")
    summary = json.loads((out / "summary.json").read_text())
    train = yaml.safe_load((out / "config.yaml").read_text())["train"]
    record = {
        "modality": modality,
        "recipe": recipe,
        "data": data,
        "tag": tag,
        "settings": list(settings),
        "smoke": smoke,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": where,
        "wall_minutes": round(wall / 60, 2),
        "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2),  # ru_maxrss is in KiB on Linux
        "batch_size": train["batch_size"],
        "planned_epochs": train["epochs"],
        "max_minutes": train["max_minutes"],
        **{
            k: summary[k]
            for k in ("steps", "total_steps", "planned_steps", "stop_reason", "train_minutes", "samples_per_s")
        },
        "metrics": json.loads((out / "metrics.json").read_text()),
    }
    if rescore_with:
        record["rescored"] = {"classifier": rescore_with, **rescore(out, rescore_with)}
    results.parent.mkdir(parents=True, exist_ok=True)
    with open(results, "a") as f:
        f.write(json.dumps(record) + "\n")
    return record


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _score(row: dict) -> str:
    """A probe row's figures: ``kNN / linear`` or the cross-validated accuracy with its spread."""
    if "cv_top1" in row:
        return f"{100 * row['cv_top1']:.2f} ± {100 * row['cv_std']:.2f}%"
    return f"{_pct(row['knn_top1'])} / {_pct(row['linear_top1'])}" if "linear_top1" in row else _pct(row["knn_top1"])


def length(r: dict) -> str:
    """What set the run's length: its epochs, or its minute cap when that shortened the schedules."""
    if r["total_steps"] < r["planned_steps"] or r["stop_reason"] == "max_minutes":
        return f"the {r['max_minutes']:g}-min cap"
    planned = r["planned_epochs"]
    return f"{planned:g} epoch" + ("s" if planned != 1 else "")


MAIN_ROWS = ("pretrained", "random_init", "raw_input")
SCORES = ("knn_top1", "linear_top1", "cv_top1", "cv_std")


def _columns(metrics: dict) -> tuple[list[str], list[str]]:
    """A run's baseline rows beyond the raw input (audio's ``mfcc_stats``) and its extra probe columns (audio's
    ``frame_linear``), in the order the run wrote them."""
    extra_rows = [k for k in metrics if k not in MAIN_ROWS]
    extra_cols = [k for k in metrics["pretrained"] if k not in SCORES]
    return extra_rows, extra_cols


def render(records: list[dict], modality: str, only: Sequence[str] = ()) -> str:
    """The markdown table of the latest non-smoke record of each (recipe, data, tag) of ``modality`` (of the
    recipes ``only`` names, if any), in the order the recipes first appear. Baseline rows beyond the raw input
    (``DataBundle.extra_baselines``) get a column each, and each extra probe (``DataBundle.extra_probes``) and
    head score (``Method.head_scores``) a column ``pretrained / untrained / raw``."""
    latest: dict[tuple, dict] = {}
    for r in records:
        if r.get("modality", "vision") == modality and not r.get("smoke") and (not only or r["recipe"] in only):
            latest[(r["recipe"], r.get("data"), r.get("tag"))] = r
    extra_rows: dict[str, None] = {}
    extra_cols: dict[str, None] = {}
    for r in latest.values():
        rows_, cols_ = _columns(r["metrics"])
        extra_rows.update(dict.fromkeys(rows_))
        extra_cols.update(dict.fromkeys(cols_))
    rows = []
    for (recipe, data, tag), r in latest.items():
        m = r["metrics"]
        name = f"{modality}/{recipe}" + (f" ({data})" if data else "") + (f" [{tag}]" if tag else "")
        cells = [name, f"{r['steps']}", length(r),
                 f"{r['train_minutes']:.1f}", f"{r['wall_minutes']:.1f}", f"{r['samples_per_s']:,.0f}",
                 f"{r['peak_rss_gib']:.1f} GiB", _score(m["pretrained"]), _score(m["random_init"]),
                 _score(m["raw_input"]) if "raw_input" in m else "-"]  # fmt: skip
        cells += [_score(m[k]) if k in m else "-" for k in extra_rows]
        for col in extra_cols:
            vals = [m[k].get(col) for k in MAIN_ROWS if k in m]
            cells.append(" / ".join("-" if v is None else _pct(v) for v in vals))
        if "rescored" in r:
            s = r["rescored"]
            cells.append(" / ".join(_score(s[k]) for k in MAIN_ROWS if k in s))
        rows.append(cells)
    cv = any("cv_top1" in r["metrics"]["pretrained"] for r in latest.values())
    probe = "cross-val" if cv else "kNN / linear"
    header = ["recipe", "steps", "length set by", "training min", "wall min", "training samples/s", "peak memory",
              f"pretrained {probe}", f"untrained {probe}", f"raw input {probe}"]  # fmt: skip
    header += [f"{k} {probe}" for k in extra_rows]
    header += [f"{c}: pretrained / untrained / raw" for c in extra_cols]
    if any("rescored" in r for r in latest.values()):
        clf = next(r["rescored"]["classifier"] for r in latest.values() if "rescored" in r)
        header.append(f"{clf}: pretrained / untrained / raw")
    return markdown_table(header, rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run recipes with their defaults, one after another")
    r.add_argument("recipes", nargs="*", metavar="RECIPE", help="some of the modality's recipes (default: all)")
    r.add_argument("--data", nargs="*", default=[None], help="data.name of each run (default: the modality's)")
    r.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="settings for every run")
    r.add_argument("--rescore", metavar="CLASSIFIER", help="also cross-validate with this classifier (svm_rbf, ...)")
    r.add_argument("--runs", type=Path, default=RUNS, help="folder of the run folders (default: runs/defaults)")
    r.add_argument("--tag", help="name of this variant of the recipes (their --set), its own folder and table row")
    t = sub.add_parser("table", help="markdown table of the latest record of each recipe")
    t.add_argument("recipes", nargs="*", metavar="RECIPE", help="only these recipes' rows (default: all)")
    for s in (r, t):
        s.add_argument("--modality", required=True)
        s.add_argument("--results", type=Path, default=RESULTS)
    a = p.parse_args(argv)
    if a.cmd == "run":
        known = recipes(a.modality)
        if unknown := [x for x in a.recipes if x not in known]:
            p.error(f"unknown recipe {', '.join(unknown)}: choose from {', '.join(known)}")
        for data in a.data:
            for recipe in a.recipes or known:
                rec = run_one(a.modality, recipe, a.runs, a.results, a.set, data, a.rescore, tag=a.tag)
                print(f"  {rec['steps']} steps, {rec['train_minutes']:.1f} min training, {rec['wall_minutes']:.1f} "
                      f"min wall, {rec['peak_rss_gib']:.1f} GiB, {_score(rec['metrics']['pretrained'])}",
                      flush=True)  # fmt: skip
    else:
        if not a.results.exists():
            raise SystemExit(f"no results yet at {a.results}: run `defaults.py run --modality ...` first")
        records = [json.loads(line) for line in a.results.read_text().splitlines() if line.strip()]
        print(render(records, a.modality, a.recipes))


if __name__ == "__main__":
    main()

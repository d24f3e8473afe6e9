"""Run every graph recipe with its defaults and print the README's table rows.

Each run is ``selfsup pretrain graph/<method> [--set data.name=<data>]`` in a fresh process, as a user
runs it; the row takes the run's ``metrics.json`` (10-fold cross-validated linear SVM on frozen
embeddings: pretrained, the same network untrained, and the raw input) and the command's wall time
(probes included). A second figure per cell re-scores the same embeddings with GraphMAE's exact
classifier, an RBF ``SVC`` on the raw embeddings (``cross_val_accuracy(..., classifier="svm_rbf")``,
same folds), the protocol behind GraphMAE's published MUTAG 88.19.

Usage::

    uv run python packages/ssl-graph/benchmarks/table.py --data mutag cuneiform --out runs/graph-table
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def pct(row: dict) -> str:
    return f"{100 * row['cv_top1']:.2f} ± {100 * row['cv_std']:.2f}%"


def rbf_scores(run: Path) -> dict[str, str]:
    """The run's checkpoint, an untrained twin and the raw input, scored by GraphMAE's RBF SVC protocol."""
    import torch

    from ssl_core.eval import cross_val_accuracy, embed_inputs
    from ssl_core.run import build_method, open_run
    from ssl_core.train import latest_checkpoint, load_weights

    torch.set_num_threads(1)
    modality, recipe, cfg = open_run(run)
    bundle = modality.load_data(cfg.data)
    trained, untrained = build_method(recipe, cfg, bundle), build_method(recipe, cfg, bundle)
    load_weights(trained, latest_checkpoint(run / "checkpoints"))
    inputs = list(bundle.probe_train.inputs) + list(bundle.probe_test.inputs)
    labels = torch.cat([bundle.probe_train.labels, bundle.probe_test.labels])
    out = {}
    for name, fn in (
        ("pretrained", trained.eval().embed),
        ("random_init", untrained.eval().embed),
        ("raw_input", bundle.raw_features),
    ):
        emb = embed_inputs(fn, inputs, batch_size=256, collate_fn=bundle.collate_fn)
        r = cross_val_accuracy(emb, labels, folds=cfg.probe.cv_folds, classifier="svm_rbf", seed=cfg.probe.seed)
        out[name] = f"{100 * r.mean:.2f} ± {100 * r.std:.2f}%"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["mutag"])
    parser.add_argument("--methods", nargs="+", default=None, help="default: every registered graph recipe")
    parser.add_argument("--out", default="runs/graph-table")
    args = parser.parse_args()
    from ssl_core.registry import get_modality

    methods = args.methods or sorted(get_modality("graph").recipes)
    for data in args.data:
        print(f"\n{data}: linear SVM / RBF SVM (GraphMAE's classifier), 10-fold\n")
        print("| method | pretrained | untrained (random init) | raw input | wall time |\n|---|---|---|---|---|")
        for m in methods:
            run = Path(args.out) / f"{m}-{data}"
            cmd = [sys.executable, "-m", "ssl_core", "pretrain", f"graph/{m}", "--out", str(run)]
            cmd += ["--set", f"data.name={data}", "train.progress=false"]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                print(f"| {m} | failed: {proc.stderr.strip().splitlines()[-1]} | | | |", flush=True)
                continue
            metrics = json.loads((run / "metrics.json").read_text())
            summary = json.loads((run / "summary.json").read_text())
            rbf = rbf_scores(run)
            cells = [f"{pct(metrics[k])} / {rbf[k]}" for k in ("pretrained", "random_init", "raw_input")]
            print(f"| {m} | {' | '.join(cells)} | {wall / 60:.1f} min ({summary['steps']} steps) |", flush=True)


if __name__ == "__main__":
    main()

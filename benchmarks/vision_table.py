"""The Fashion-MNIST table: every selfsup vision method beside lightly's version, same backbone, views, budget.

Every method pretrains on the 60,000 Fashion-MNIST training images for the same fixed budget in steps
(``EPOCHS`` of batch 256, not minutes, so accuracies do not depend on machine load), with its recipe's
settings; then the frozen backbone is scored on the 10,000 test images by a kNN probe (k=20, cosine,
temperature 0.07) and a linear probe (logistic regression, L2 chosen on a held-out fifth), both fitted on a
class-stratified 10,000 of the training images, as the recipes' own probes. At this budget the spread
between seeds is a few points, so each cell is the mean over seeds (``--seed``). The training throughput
(images per second, each image giving all of its views) of both libraries is measured apart, alternating
row by row (``speed``). Beside them: the random-init backbones and the raw pixels (also scored with the
plain 5-NN on 10,000 training images that gives the published 82%).

One run per call, appended to a JSON-lines results file, so the table can be filled in piece by piece on a
quiet machine::

    uv run python benchmarks/vision_table.py run simclr --impl ours
    uv run python benchmarks/vision_table.py run simclr --impl lightly --seed 1
    uv run python benchmarks/vision_table.py baselines
    uv run python benchmarks/vision_table.py all --seed 2   # every run of one seed in turn (about an hour)
    uv run python benchmarks/vision_table.py speed          # images/s, ours and lightly's alternating
    uv run python benchmarks/vision_table.py run simclr --epochs 8   # the long run of the best method
    uv run python benchmarks/vision_table.py table          # markdown, from the results file

``--max-steps N`` makes a smoke run (validation of the harness); smoke rows are recorded with
``"smoke": true`` and left out of the table.
"""

from __future__ import annotations

import argparse
import csv
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads libgomp (see _harness.py)

import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ssl_core.config import base_config, merge, to_run_config  # noqa: E402
from ssl_core.data import DataBundle  # noqa: E402
from ssl_core.eval.embed import embed_inputs, stratified_subset  # noqa: E402
from ssl_core.eval.knn import knn_accuracy  # noqa: E402
from ssl_core.eval.linear import linear_probe  # noqa: E402
from ssl_core.registry import resolve  # noqa: E402
from ssl_core.train import latest_checkpoint, load_weights  # noqa: E402
from ssl_vision.data.images import VisionDataConfig, load_data  # noqa: E402

# The table's budget, in epochs of the 60,000 training images: 0.5 x 234 -> 117 steps of batch 256, so that
# all 27 runs of the table, probes included, fit in about an hour of 2 quiet CPU cores (see the README).
# Every setting, the warm-up of 0.1 epochs included, is the recipe's default.
EPOCHS = 0.5
# the probes fit on a class-stratified 10,000 of the training images, as the recipes' own probes and the
# published 82% of raw pixels with 5-NN
PROBE_TRAIN = 10_000
# ViT rows use 7-pixel patches (16 tokens of 28x28 instead of 49): SimMIM's encoder sees every token, and
# every probe embeds 20,000 full images, which 49 tokens would make cost as much as the rest of the table
VIT7 = ["method.backbone.patch_size=7"]
# the ResNet rows keep the backbone the table was measured with (the recipes' default until 2026-12-04, when
# the default became ResNetConfig.slim(): a stride-2 stem and a grid embedding), so that its rows stay
# comparable and reproducible; `speed` measures the recipes' default backbone
TABLED_RESNET = ["method.backbone.stem_stride=1", "method.backbone.pool=avg"]
# how the table runs `selfsup pretrain`: on Fashion-MNIST, for the steps asked (no time cap), probes apart
OURS_SET = ["data.name=fashion_mnist", "train.max_minutes=null", "probe.enabled=false", "train.progress=false"]
RESULTS = Path(__file__).resolve().parent / "results" / "vision_table.jsonl"

# row -> (recipe, extra settings of ours, name of lightly's version or None when lightly has none)
# (in the order "all" runs them: the methods lightly has first)
ROWS: dict[str, tuple[str, list[str], str | None]] = {
    "simclr": ("simclr", [], "simclr"),
    "moco_v2": ("moco_v2", [], "moco_v2"),
    "byol": ("byol", [], "byol"),
    "simsiam": ("simsiam", [], "simsiam"),
    "nnclr": ("nnclr", [], "nnclr"),
    "barlow_twins": ("barlow_twins", [], "barlow_twins"),
    "vicreg": ("vicreg", [], "vicreg"),
    "swav": ("swav", [], "swav"),
    "dino": ("dino", [], "dino"),
    "mae": ("mae", VIT7, "mae"),
    "moco_v3": ("moco_v3", [], None),
    "simmim": ("simmim", VIT7, None),
    "simclr+dcl": ("simclr", ["method.loss=dcl"], None),  # lightly has DCLLoss, but no DCL method to compare
    "simclr+dclw": ("simclr", ["method.loss=dclw"], None),
}


# ---------------------------------------------------------------------------------------------- helpers
def machine() -> dict:
    """Where a figure was taken (CPU model, cores, torch version, load average at the time)."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }


def fashion_mnist() -> DataBundle:
    bundle = load_data(VisionDataConfig(name="fashion_mnist"))
    if len(bundle.train) != 60_000:
        raise SystemExit("the table needs Fashion-MNIST (apt-get install dataset-fashion-mnist)")
    return bundle


def row_settings(row: str, tabled: bool = True) -> list[str]:
    """The row's settings over its recipe's defaults (with ``tabled``, the table's ResNet for ResNet rows)."""
    recipe_name, extra, _ = ROWS[row]
    return [*extra, *(TABLED_RESNET if tabled and recipe_name not in ("mae", "simmim") else [])]


def row_config(row: str, *overrides: str, tabled: bool = True):
    """The recipe of a table row and its run config: the recipe's defaults with the row's settings, then
    ``overrides`` -- what both libraries train with."""
    modality, recipe = resolve(f"vision/{ROWS[row][0]}")
    settings = [*row_settings(row, tabled), *overrides]
    return recipe, to_run_config(merge(base_config(modality, recipe), overrides=settings))


def probe(embed_fn, bundle: DataBundle, train_size: int | None = None) -> dict:
    """kNN (k=20) and linear top-1 on the 10,000 test images, fitted on a stratified ``train_size`` of the
    training images (``PROBE_TRAIN`` when not given)."""
    train_size = PROBE_TRAIN if train_size is None else train_size
    tr, te = stratified_subset(bundle.probe_train, train_size), bundle.probe_test
    e_tr = embed_inputs(embed_fn, tr.inputs, batch_size=1024)
    e_te = embed_inputs(embed_fn, te.inputs, batch_size=1024)
    return {
        "knn_top1": round(knn_accuracy(e_tr, tr.labels, e_te, te.labels, k=20, temperature=0.07), 4),
        "linear_top1": round(linear_probe(e_tr, tr.labels, e_te, te.labels).top1, 4),
    }


def append(result: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(result) + "\n")
    print(json.dumps(result, indent=1))


# ------------------------------------------------------------------------------------------------- runs
def run_ours(
    row: str, epochs: float, max_steps: int | None, bundle: DataBundle, probe_train: int | None, seed: int
) -> dict:
    """Pretrain with ``selfsup pretrain vision/<recipe>`` (the product's own path), then probe."""
    from ssl_core.run import build_method, open_run, pretrain

    with tempfile.TemporaryDirectory(prefix="vision-table-") as tmp:
        run_dir = pretrain(
            f"vision/{ROWS[row][0]}",
            epochs=epochs,
            max_steps=max_steps,
            out=Path(tmp) / "run",
            overrides=[*row_settings(row), f"train.seed={seed}", *OURS_SET],
        )
        summary = json.loads((run_dir / "summary.json").read_text())
        _, recipe, cfg = open_run(run_dir)
        method = build_method(recipe, cfg, bundle)
        load_weights(method, latest_checkpoint(run_dir / "checkpoints"))
    method.eval()
    return {
        **probe(method.embed, bundle, probe_train),
        "steps": summary["steps"],
        "batch_size": cfg.train.batch_size,
        "images_per_s": summary["samples_per_s"],
        "train_minutes": summary["train_minutes"],
        "backbone": type(method.backbone).__name__,
        "backbone_params": sum(p.numel() for p in method.backbone.parameters()),
    }


def run_lightly(
    row: str, epochs: float, max_steps: int | None, bundle: DataBundle, probe_train: int | None, seed: int
) -> dict:
    """lightly's version with our recipe's backbone, views and settings (see vision_lightly.py)."""
    from vision_lightly import train_lightly

    lightly_name = ROWS[row][2]
    if lightly_name is None:
        raise SystemExit(f"lightly has no version of {row}")
    _, cfg = row_config(row, f"train.seed={seed}")
    steps_per_epoch = len(bundle.train) // cfg.train.batch_size
    total = max(1, math.ceil(epochs * steps_per_epoch))  # as ssl_core's Trainer counts
    if max_steps is not None:
        total = min(total, max_steps)
    run = train_lightly(lightly_name, cfg.method, cfg.train, bundle.info, bundle.train, total)
    with torch.no_grad():
        result = probe(run.model.backbone, bundle, probe_train)
    return {
        **result,
        "steps": run.steps,
        "batch_size": cfg.train.batch_size,
        "images_per_s": round(run.images_per_s, 1),
        "train_minutes": round(run.train_s / 60, 3),
        "backbone": type(run.model.backbone).__name__,
        "backbone_params": sum(p.numel() for p in run.model.backbone.parameters()),
    }


def run_baselines(bundle: DataBundle) -> list[dict]:
    """The random-init backbone of every recipe's default (one row per distinct backbone) and raw pixels."""
    from sklearn.neighbors import KNeighborsClassifier

    from ssl_core.run import build_method

    out, seen = [], set()
    for row in ROWS:
        recipe, cfg = row_config(row)
        method = build_method(recipe, cfg, bundle)
        key = json.dumps(dataclasses.asdict(method.backbone.config), sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        method.eval()
        out.append(
            {"row": f"random init ({type(method.backbone).__name__})", "like": row, **probe(method.embed, bundle)}
        )
    # lightly's MAE runs on torchvision's ViT (its own initialisation and position embedding), not on ours:
    # its untrained score is the starting point of lightly's MAE row
    from vision_lightly import LIGHTLY_METHODS

    _, cfg = row_config("mae")
    torch.manual_seed(cfg.train.seed)
    vit = LIGHTLY_METHODS["mae"](cfg.method, bundle.info, 1, cfg.train).backbone.eval()
    with torch.no_grad():
        out.append({"row": "random init (lightly's torchvision ViT)", "like": "mae", **probe(vit, bundle)})
    pixels = probe(lambda x: x.flatten(1), bundle)
    # the reference protocol of the 82%: plain Euclidean 5-NN on 10,000 training images (stratified)
    sub = stratified_subset(bundle.probe_train, 10_000, seed=0)
    x_sub = torch.stack([sub.inputs[i] for i in range(len(sub.labels))]).flatten(1).numpy()
    x_test = torch.stack([bundle.probe_test.inputs[i] for i in range(len(bundle.probe_test.labels))]).flatten(1)
    knn5 = (
        KNeighborsClassifier(5).fit(x_sub, sub.labels.numpy()).score(x_test.numpy(), bundle.probe_test.labels.numpy())
    )
    out.append({"row": "raw pixels", **pixels, "knn5_10k_top1": round(float(knn5), 4)})
    return out


def run_speed(rows: list[str], steps: int, bundle: DataBundle) -> list[dict]:
    """Images per second of ours and lightly's version of each row with the recipes' default backbone: the
    median over steps 4..``steps`` of a short run (data loading included), the two libraries alternating row
    by row."""
    import statistics

    from vision_lightly import train_lightly

    from ssl_core.run import pretrain

    out = []
    for row in rows:
        recipe_name, _, lightly_name = ROWS[row]
        with tempfile.TemporaryDirectory(prefix="vision-speed-") as tmp:
            run_dir = pretrain(
                f"vision/{recipe_name}",
                max_steps=steps,
                out=Path(tmp) / "run",
                overrides=[*row_settings(row, tabled=False), *OURS_SET],
            )
            with open(run_dir / "log.csv") as f:
                ours = [float(r["samples_per_s"]) for r in csv.DictReader(f)][3:]
        result = {"row": row, "ours_images_per_s": round(statistics.median(ours), 1)}
        if lightly_name is not None:
            _, cfg = row_config(row, tabled=False)
            run = train_lightly(lightly_name, cfg.method, cfg.train, bundle.info, bundle.train, steps)
            lt = statistics.median(cfg.train.batch_size / t for t in run.step_s[3:])
            result["lightly_images_per_s"] = round(lt, 1)
            result["speed_ratio"] = round(result["ours_images_per_s"] / lt, 2)
        out.append(result)
        print(json.dumps(result), flush=True)
    return out


# ------------------------------------------------------------------------------------------------ table
def read_results(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def render(results: list[dict]) -> str:
    """The markdown table of accuracies: for each (row, impl, epochs) the mean over seeds of the latest
    non-smoke result of each seed, and the number of seeds. (Speed is :func:`render_speed`'s table: the
    whole-run images/s of these runs were taken at different loads.)"""
    latest: dict[tuple, dict] = {}
    for r in results:
        if not r.get("smoke") and "error" not in r:
            latest[(r["row"], r.get("impl", "baseline"), r.get("epochs"), r.get("seed", 0))] = r
    cells: dict[tuple, dict[str, list[float]]] = {}
    records: dict[tuple, dict] = {}  # one result of each cell, for the baselines' extra figure
    for (row, impl, epochs, _), r in latest.items():
        c = cells.setdefault((row, impl, epochs), {"knn_top1": [], "linear_top1": []})
        for key in c:
            c[key].append(r[key])
        records[(row, impl, epochs)] = r
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    pct = lambda v: f"{100 * mean(v):.2f}%"  # noqa: E731
    lines = [
        "| method | epochs | seeds | selfsup kNN | selfsup linear | lightly kNN | lightly linear | kNN diff | "
        "linear diff |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (row, impl, epochs), c in sorted(cells.items(), key=lambda kv: (kv[0][2] or 0, kv[0][0])):
        if impl != "ours":
            continue
        lt = cells.get((row, "lightly", epochs))
        n = str(len(c["knn_top1"])) if lt is None else f"{len(c['knn_top1'])} / {len(lt['knn_top1'])}"
        out = [row, f"{epochs:g}", n, pct(c["knn_top1"]), pct(c["linear_top1"])]
        if lt is None:
            out += ["-"] * 4
        else:
            out += [pct(lt["knn_top1"]), pct(lt["linear_top1"])]
            out += [f"{100 * (mean(c[k]) - mean(lt[k])):+.2f}" for k in ("knn_top1", "linear_top1")]
        lines.append("| " + " | ".join(out) + " |")
    for key, c in cells.items():
        if key[1] == "baseline":
            r = records[key]
            extra = f" (plain 5-NN on 10,000: {pct([r['knn5_10k_top1']])})" if "knn5_10k_top1" in r else ""
            out = [f"{key[0]}{extra}", "-", "-", pct(c["knn_top1"]), pct(c["linear_top1"])]
            lines.append("| " + " | ".join(out) + " | | | | |")
    return "\n".join(lines)


def render_speed(results: list[dict]) -> str:
    """The markdown table of the latest ``speed`` measurement of each row (ours and lightly's alternating)."""
    latest = {r["row"]: r for r in results if r.get("impl") == "speed"}
    lines = ["| method | selfsup img/s | lightly img/s | ours / lightly |", "|---|---:|---:|---:|"]
    for row, r in latest.items():
        lt = r.get("lightly_images_per_s")
        cells = [row, f"{r['ours_images_per_s']:.0f}", "-" if lt is None else f"{lt:.0f}"]
        cells += ["-" if lt is None else f"{r['speed_ratio']:.2f}x"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="pretrain one method (ours or lightly's) and probe it")
    r.add_argument("row", choices=sorted(ROWS))
    r.add_argument("--impl", choices=["ours", "lightly"], default="ours")
    r.add_argument("--epochs", type=float, default=EPOCHS)
    r.add_argument("--max-steps", type=int, help="a smoke run of N steps (recorded as smoke, not tabled)")
    r.add_argument("--probe-train", type=int, help="fit the probes on a stratified subset (smoke runs only)")
    r.add_argument("--seed", type=int, default=0, help="train.seed of the run (the table averages over seeds)")
    sub.add_parser("baselines", help="random-init backbones and raw pixels")
    sp = sub.add_parser("speed", help="images/s of ours and lightly's (short runs, to choose the budget)")
    sp.add_argument("rows", nargs="*", default=sorted(ROWS))
    sp.add_argument("--steps", type=int, default=12)
    sub.add_parser("table", help="print the markdown tables (accuracy, speed) of the results file")
    a = sub.add_parser("all", help="every run of the table, serially")
    a.add_argument("--epochs", type=float, default=EPOCHS)
    a.add_argument("--seed", type=int, default=0, help="train.seed of every run (baselines only with seed 0)")
    a.add_argument("--rows", nargs="+", choices=sorted(ROWS), default=list(ROWS), help="only these rows")
    for s in (r, sub.choices["baselines"], sub.choices["table"], a, sp):
        s.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    if args.command == "table":
        results = read_results(args.results)
        print(render(results))
        if any(r.get("impl") == "speed" for r in results):
            print("\n" + render_speed(results))
        return
    bundle = fashion_mnist()
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    if args.command == "speed":
        for row in run_speed(args.rows, args.steps, bundle):
            append({**row, "impl": "speed", "smoke": True, "date": stamp, "machine": machine()}, args.results)
        return
    if args.command == "baselines":
        for row in run_baselines(bundle):
            append({**row, "impl": "baseline", "date": stamp, "machine": machine()}, args.results)
        return
    jobs = [(args.row, args.impl)] if args.command == "run" else []
    if args.command == "all":
        jobs = [(row, impl) for row in args.rows for impl in ("ours", "lightly") if impl == "ours" or ROWS[row][2]]
        if args.seed == 0:  # baselines first: every row is read against them (they do not depend on the seed)
            for row in run_baselines(bundle):
                append({**row, "impl": "baseline", "date": stamp, "machine": machine()}, args.results)
    for row, impl in jobs:
        before = machine()
        t0 = time.perf_counter()
        fn = run_ours if impl == "ours" else run_lightly
        max_steps, probe_train = getattr(args, "max_steps", None), getattr(args, "probe_train", None)
        smoke = max_steps is not None or probe_train is not None
        try:
            result = fn(row, args.epochs, max_steps, bundle, probe_train, args.seed)
        except Exception as e:  # noqa: BLE001 - one failed run must not stop the hours-long "all"
            if args.command != "all":
                raise
            print(f"{row} ({impl}) failed: {e!r}", file=sys.stderr, flush=True)
            failed = {"row": row, "impl": impl, "epochs": args.epochs, "seed": args.seed, "error": repr(e)}
            append({**failed, "date": stamp}, args.results)
            continue
        append(
            {
                "row": row,
                "impl": impl,
                "epochs": args.epochs,
                "seed": args.seed,
                "smoke": smoke,
                **result,
                "wall_minutes": round((time.perf_counter() - t0) / 60, 2),
                "date": stamp,
                "machine": before,
                "load_avg_1min_after": round(os.getloadavg()[0], 2),
            },
            args.results,
        )


if __name__ == "__main__":
    main()

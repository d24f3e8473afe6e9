"""A run from end to end: resolve the recipe, load data, pretrain, probe, and the run folder's files.

A run folder holds::

    config.yaml       the resolved configuration (what --resume and `selfsup eval` read back)
    backbone.json     how to rebuild the backbone (used by `selfsup export`)
    checkpoints/      step_<N>/ folders (see ssl_core.train.checkpoint)
    log.csv, tb/      training logs (CSV and TensorBoard)
    plots/loss.png    the loss curve
    plots/embeddings.png  a t-SNE map of 2,000 test embeddings coloured by class (named in the legend when
                      the data names them; with the probes)
    metrics.json      probe accuracies: {"pretrained": ..., "random_init": ..., "raw_input": ...}
    summary.json      steps, wall times, throughput and probe settings
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch.profiler import record_function

from ssl_core import distributed as D
from ssl_core.config import RunConfig, base_config, load_config, merge, read_recipe_key, save_config, to_run_config
from ssl_core.data import DataBundle
from ssl_core.errors import CheckpointError, ConfigError
from ssl_core.eval.embed import format_table, probe_table
from ssl_core.eval.plots import EMBEDDINGS_PLOT, plot_test_embeddings
from ssl_core.io import atomic_write
from ssl_core.method import Method
from ssl_core.modality import Modality, Recipe
from ssl_core.registry import resolve
from ssl_core.train.checkpoint import check_checkpoint, latest_checkpoint, load_weights, resume_fix
from ssl_core.train.trainer import Trainer, TrainResult, seed_everything

RUNS_ROOT = Path("runs")
METRICS_FILE = "metrics.json"
BACKBONE_FILE = "backbone.json"


def _say(msg: str) -> None:
    if D.get_rank() == 0:
        print(msg, file=sys.stderr, flush=True)


def _write_json(path: Path, obj: Any) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")


def build_method(recipe: Recipe, cfg: RunConfig, data: DataBundle) -> Method:
    """Construct the recipe's method with the run's seed, so the same config gives the same initial weights
    (which is also how the ``random_init`` baseline of the probes is rebuilt)."""
    seed_everything(cfg.train.seed)
    return recipe.method(cfg.method, data.info)


def _run_prefix(key: str) -> str:
    return key.replace("/", "-")


def find_latest_run(key: str, root: Path = RUNS_ROOT) -> Path | None:
    """The most recently modified run folder of ``key`` under ``root`` that holds a checkpoint."""
    if not root.is_dir():
        return None
    runs = [p for p in root.glob(_run_prefix(key) + "-*") if latest_checkpoint(p / "checkpoints")]
    return max(runs, key=lambda p: p.stat().st_mtime) if runs else None


def _load_data(modality: Modality, cfg: RunConfig) -> DataBundle:
    with record_function("run/load_data"):
        data = modality.load_data(cfg.data)
    _say(f"data: {data.description}")
    return data


def pretrain(
    key: str,
    *,
    data: str | None = None,
    epochs: float | None = None,
    max_steps: int | None = None,
    max_minutes: float | None = None,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    overrides: Sequence[str] = (),
    config_file: str | os.PathLike | None = None,
    runs_root: str | os.PathLike = RUNS_ROOT,
) -> Path:
    """Pretrain ``"<modality>/<method>"``, then probe it; returns the run folder.

    Args:
        key: the recipe, e.g. ``"vision/simclr"``.
        data: a user data path (default: the modality's embedded data set).
        epochs, max_steps, max_minutes: the budget (see :class:`~ssl_core.train.config.TrainConfig`).
        out: the run folder (default: ``runs/<modality>-<method>-<date>-<time>``).
        resume: continue the run in ``out`` (default: the latest run of ``key``) from its last checkpoint,
            with its saved configuration.
        overrides: ``key=value`` settings (``train.lr=0.1``).
        config_file: a YAML file of settings, merged before ``overrides``.
        runs_root: where default run folders go.
    """
    t0 = time.perf_counter()
    modality, recipe = resolve(key)
    key = f"{modality.name}/{recipe.name}"
    flags = {"data.path": data, "train.epochs": epochs, "train.max_steps": max_steps, "train.max_minutes": max_minutes}
    flags = {k: v for k, v in flags.items() if v is not None}
    if resume:
        if flags or overrides or config_file:
            raise ConfigError(
                "--resume continues a run with its saved config.yaml; drop --data/--epochs/--max-steps/"
                "--max-minutes/--set/--config, or start a new run"
            )
        run_dir = _run_to_resume(key, out, Path(runs_root))
        cfg_tree = load_config(run_dir, modality, recipe)
    else:
        dotlist = [f"{k}={'null' if v is None else v}" for k, v in flags.items()]
        cfg_tree = merge(base_config(modality, recipe), file=config_file, overrides=[*dotlist, *overrides])
        if data is not None:  # a path is a string whatever it looks like (YAML would read "123" as a number)
            cfg_tree.data.path = str(data)
    cfg = to_run_config(cfg_tree)
    dist_info = D.init_distributed(cfg.train.device)
    if not resume:
        run_dir = _new_run_folder(key, out, Path(runs_root))
    _say(f"selfsup: {key} -> {run_dir}" + (" (resuming)" if resume else ""))

    bundle = _load_data(modality, cfg)
    method = build_method(recipe, cfg, bundle)
    _describe_run(run_dir, cfg_tree, modality.name, key, recipe, method, dist_info)
    trainer = Trainer(method, bundle.train, cfg.train, run_dir, dist_info)
    c = cfg.train
    _say(
        f"train: {trainer.total_steps} steps of batch {c.batch_size} ({trainer.steps_per_epoch} per epoch), "
        f"{c.optimizer} lr {c.peak_lr:g}, {dist_info.world_size} process(es) on {dist_info.device}"
        + (f", at most {c.max_minutes:g} min" if c.max_minutes else "")
    )
    result = trainer.fit(resume=resume)
    t_train = time.perf_counter() - t0

    table = None
    if dist_info.is_main and cfg.probe.enabled and result.stop_reason != "interrupted":
        if bundle.probe_train is None:
            _say("probes: skipped, the data has no labels")
        else:
            table = _probe(recipe, cfg, bundle, method, dist_info.device, run_dir)
            _write_json(run_dir / METRICS_FILE, table)
    if dist_info.is_main:
        _report(run_dir, key, recipe, result, cfg, bundle, table, t_train, time.perf_counter() - t0)
    D.barrier()
    return run_dir


def _run_to_resume(key: str, out: str | os.PathLike | None, runs_root: Path) -> Path:
    """The run folder ``--resume`` continues (``out``, or the latest run of ``key``), checked before any data
    loads: it holds an intact checkpoint of this recipe."""
    run_dir = Path(out) if out is not None else find_latest_run(key, runs_root)
    if run_dir is None:
        raise CheckpointError(f"no run of {key} with a checkpoint under {runs_root}/; pass --out RUN_FOLDER")
    latest = latest_checkpoint(run_dir / "checkpoints")
    if latest is None:
        raise CheckpointError(f"{run_dir} has no checkpoint to resume from")
    check_checkpoint(latest, fix=resume_fix(latest))  # the trainer checks it again when it loads it
    if read_recipe_key(run_dir) != key:
        raise ConfigError(f"{run_dir} is a run of {read_recipe_key(run_dir)}, not {key}")
    return run_dir


def _new_run_folder(key: str, out: str | os.PathLike | None, runs_root: Path) -> Path:
    """The folder of a new run: ``out``, or ``runs/<modality>-<method>-<date>-<time>`` (rank 0's name on
    every rank); refused if it already holds a run."""
    if out is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = Path(D.all_gather_object(str(runs_root / f"{_run_prefix(key)}-{stamp}"))[0])
    else:
        run_dir = Path(out)
    if latest_checkpoint(run_dir / "checkpoints") is not None:
        raise ConfigError(f"{run_dir} already holds a run; add --resume to continue it, or choose another --out")
    return run_dir


def _describe_run(run_dir: Path, cfg_tree, modality: str, key: str, recipe: Recipe, method: Method, dist_info) -> None:
    """Write ``config.yaml`` and ``backbone.json`` (rank 0) and say what is trained."""
    spec = method.backbone_spec()
    if dist_info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg_tree, run_dir)
        _write_json(run_dir / BACKBONE_FILE, {"modality": modality, "recipe": key, **dataclasses.asdict(spec)})
    n_params = sum(p.numel() for p in method.backbone.parameters())
    _say(
        f"method: {recipe.summary}; backbone {spec.name} "
        f"({n_params / 1e6:.2f} M parameters, embedding {spec.embed_dim})"
    )
    D.barrier()


def _report(
    run_dir: Path, key: str, recipe: Recipe, result: TrainResult, cfg: RunConfig, bundle: DataBundle,
    table: dict | None, t_train: float, wall: float,
) -> None:  # fmt: skip
    """Write ``summary.json``; print the probe table, the recipe's measured longer run, and the times."""
    _write_summary(run_dir, key, result, cfg, bundle, t_train, wall)
    if table is not None:
        print(format_table(table))
        if recipe.longer_run:
            print(f"longer: {recipe.longer_run}")
    _say(
        f"wall time {wall / 60:.1f} min (training {result.elapsed_s / 60:.1f} min, "
        f"{result.samples_per_s:.0f} samples/s); run folder {run_dir}"
    )


def _probe(
    recipe: Recipe, cfg: RunConfig, bundle: DataBundle, method: Method, device: torch.device, run_dir: Path
) -> dict:
    n_train = len(bundle.probe_train.labels)
    n_used = n_train if cfg.probe.train_size is None else min(cfg.probe.train_size, n_train)
    _say(
        f"probes: kNN (k={cfg.probe.k}) and linear on {n_used:,} of {n_train:,} training and all "
        f"{len(bundle.probe_test.labels):,} test inputs"
    )
    untrained = build_method(recipe, cfg, bundle).to(device)
    method.eval()
    untrained.eval()
    try:
        embedders = {"pretrained": method.embed, "random_init": untrained.embed}
        embeddings: dict = {}
        backbones = {"pretrained": method.backbone, "random_init": untrained.backbone}
        table = probe_table(bundle, embedders, cfg.probe, device, embeddings, backbones, {"random_init": untrained})
        for row, m in (("pretrained", method), ("random_init", untrained)):
            with record_function(f"probe/heads {row}"):
                table[row].update({k: round(float(v), 4) for k, v in m.head_scores(bundle, device).items()})
        if len(bundle.probe_test.labels) >= 3:  # t-SNE of the pretrained test embeddings, a few seconds
            out = run_dir / "plots" / EMBEDDINGS_PLOT
            with record_function("probe/tsne"):
                plot_test_embeddings(
                    method.embed, bundle.probe_test, out, 2000, cfg.probe.seed, device, bundle.collate_fn,
                    cfg.recipe, embeddings=embeddings["pretrained"][1],
                )  # fmt: skip
        return table
    finally:
        method.train()


def _write_summary(
    run_dir: Path, key: str, result: TrainResult, cfg: RunConfig, bundle: DataBundle, t_train: float, wall: float
) -> None:
    _write_json(
        run_dir / "summary.json",
        {
            "recipe": key,
            "steps": result.step,
            "total_steps": result.total_steps,
            "planned_steps": result.planned_steps,
            "stop_reason": result.stop_reason,
            "train_minutes": round(result.elapsed_s / 60, 3),
            "samples_per_s": round(result.samples_per_s, 1),
            "wall_minutes_this_session": round(wall / 60, 3),
            "data": bundle.description,
            "probe": dataclasses.asdict(cfg.probe),
        },
    )


def open_run(run_dir: str | os.PathLike) -> tuple[Modality, Recipe, RunConfig]:
    """Resolve a run folder's recipe and configuration."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"run folder not found: {run_dir}")
    modality, recipe = resolve(read_recipe_key(run_dir))
    return modality, recipe, to_run_config(load_config(run_dir, modality, recipe))


def evaluate(run_dir: str | os.PathLike, checkpoint: str | os.PathLike | None = None) -> dict:
    """Probe a run's checkpoint (default: the latest) and rewrite its ``metrics.json``; returns the table."""
    run_dir = Path(run_dir)
    modality, recipe, cfg = open_run(run_dir)
    ckpt = Path(checkpoint) if checkpoint is not None else latest_checkpoint(run_dir / "checkpoints")
    if ckpt is None:
        raise CheckpointError(f"{run_dir} has no checkpoint to evaluate")
    fix = f"evaluate it with `selfsup eval {run_dir} --checkpoint {{previous}}`"
    check_checkpoint(ckpt, ("model.safetensors",), fix=fix)  # before the data loads: fail in a second
    bundle = _load_data(modality, cfg)
    if bundle.probe_train is None:
        raise ConfigError("the run's data has no labels to probe with")
    device = D.init_distributed(cfg.train.device).device
    method = build_method(recipe, cfg, bundle)
    load_weights(method, ckpt, fix=fix)
    _say(f"checkpoint: {ckpt}")
    table = _probe(recipe, cfg, bundle, method.to(device), device, run_dir)
    _write_json(run_dir / METRICS_FILE, table)
    return table

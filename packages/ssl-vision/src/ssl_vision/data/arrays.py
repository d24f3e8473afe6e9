"""Reading images stored as NumPy ``.npy`` arrays (``numpy.save`` of a uint8 or float array)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ssl_core.data import check_finite
from ssl_core.errors import DataError

# file names of a folder of arrays; only the training images are required
NPY_FILES = {
    "train_images": ("images.npy", "train_images.npy"),
    "train_labels": ("labels.npy", "train_labels.npy"),
    "test_images": ("test_images.npy",),
    "test_labels": ("test_labels.npy",),
}


def read_npy_images(path: str | Path) -> torch.Tensor:
    """Read images from a ``.npy`` file as uint8 ``(N, C, H, W)``.

    Accepted layouts: ``(N, H, W)`` (grayscale), ``(N, C, H, W)`` or ``(N, H, W, C)`` with ``C`` 1 or 3.
    uint8 arrays are taken as they are; float arrays must hold finite values in [0, 1] and are scaled by
    255. Nothing is unpickled (``allow_pickle=False``).

    Shapes:
        - output: ``(N, C, H, W)`` uint8
    """
    path = Path(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read {path} as a NumPy .npy array: {str(e).splitlines()[0]}") from None
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim == 4 and arr.shape[1] not in (1, 3) and arr.shape[-1] in (1, 3):
        arr = arr.transpose(0, 3, 1, 2)  # channels last -> channels first
    if arr.ndim != 4 or arr.shape[1] not in (1, 3) or len(arr) == 0:
        raise DataError(
            f"{path} holds an array of shape {arr.shape}; expected images (N, H, W), (N, C, H, W) or (N, H, W, C) "
            "with C = 1 or 3"
        )
    if arr.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(arr))
    if np.issubdtype(arr.dtype, np.floating):
        check_finite(arr, str(path))  # NaN would pass the range check below and become 0
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0 or hi > 1:
            raise DataError(f"{path} holds floats in [{lo:g}, {hi:g}]; float images must lie in [0, 1] (or save uint8)")
        return torch.from_numpy(np.ascontiguousarray(np.round(arr * 255).astype(np.uint8)))
    raise DataError(f"{path} holds {arr.dtype} values; save images as uint8 (0-255) or floats in [0, 1]")


def read_npy_labels(path: str | Path, n: int) -> torch.Tensor:
    """Read ``n`` integer class labels from a ``.npy`` file.

    Shapes:
        - output: ``(n,)`` int64
    """
    path = Path(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read {path} as a NumPy .npy array: {str(e).splitlines()[0]}") from None
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer) or len(arr) != n:
        raise DataError(f"{path} must hold {n} integer labels (one per image), got {arr.dtype} {arr.shape}")
    if len(arr) and arr.min() < 0:
        raise DataError(f"{path} holds negative labels; labels are class indices 0, 1, ...")
    return torch.from_numpy(arr.astype(np.int64))


def find_npy(folder: Path, key: str) -> Path | None:
    """The file of ``key`` (see ``NPY_FILES``) in ``folder``, or ``None``."""
    for name in NPY_FILES[key]:
        if (folder / name).is_file():
            return folder / name
    return None


def is_npy_folder(folder: Path) -> bool:
    """True when ``folder`` holds ``images.npy`` (or ``train_images.npy``)."""
    return find_npy(folder, "train_images") is not None


def load_npy_folder(
    folder: str | Path,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Load ``images.npy`` with, when present, ``labels.npy``, ``test_images.npy`` and ``test_labels.npy``.

    Returns:
        ``(train_images, train_labels, test_images, test_labels)``; images uint8 ``(N, C, H, W)``, labels
        int64 ``(N,)``; absent parts are ``None``.
    """
    folder = Path(folder)
    x = read_npy_images(find_npy(folder, "train_images"))
    y_path = find_npy(folder, "train_labels")
    y = read_npy_labels(y_path, len(x)) if y_path else None
    xt_path, yt_path = find_npy(folder, "test_images"), find_npy(folder, "test_labels")
    if (xt_path is None) != (yt_path is None):
        raise DataError(f"{folder} needs both test_images.npy and test_labels.npy, or neither")
    if xt_path is not None and y is None:
        raise DataError(f"{folder} has a test split but no labels.npy for the training images")
    xt = read_npy_images(xt_path) if xt_path else None
    yt = read_npy_labels(yt_path, len(xt)) if yt_path else None
    if xt is not None and xt.shape[1:] != x.shape[1:]:
        raise DataError(f"test images {tuple(xt.shape[1:])} and training images {tuple(x.shape[1:])} differ in shape")
    return x, y, xt, yt

"""Reading IDX files, the format of MNIST and Fashion-MNIST (LeCun et al., 1998; Xiao et al., 2017)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from ssl_core.data import check_finite
from ssl_core.errors import DataError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> torch.Tensor:
    """Read one IDX file (optionally gzip-compressed) into a tensor.

    The header is two zero bytes, a type code, the number of dimensions, and one big-endian 32-bit size
    per dimension; the data follows in row-major order.

    Shapes:
        - output: the sizes stored in the header, e.g. ``(60000, 28, 28)`` for images
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read IDX file {path}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataError(f"{path} is not an IDX file (bad header)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"{path} is truncated or corrupt: header says {shape}, found {len(raw) - header} data bytes")
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    check_finite(arr, str(path))  # float IDX types (0x0D, 0x0E) can hold NaN
    return torch.from_numpy(arr.astype(arr.dtype.newbyteorder("=")).copy())


def find_idx(folder: Path, split: str, kind: str) -> Path | None:
    """Locate ``<split>-<kind>-idx?-ubyte[.gz]`` (``split``: train / t10k; ``kind``: images / labels)."""
    for name in (
        f"{split}-{kind}-idx3-ubyte",
        f"{split}-{kind}-idx1-ubyte",
        f"{split}-{kind}.idx3-ubyte",
        f"{split}-{kind}.idx1-ubyte",
    ):
        for suffix in ("", ".gz"):
            p = folder / (name + suffix)
            if p.is_file():
                return p
    return None


def is_idx_folder(folder: Path) -> bool:
    """True when ``folder`` holds MNIST-style training images and labels."""
    return find_idx(folder, "train", "images") is not None and find_idx(folder, "train", "labels") is not None


def load_idx_folder(folder: str | Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Load ``train-*`` and (when present) ``t10k-*`` images and labels from an MNIST-style folder.

    Returns:
        ``(train_images, train_labels, test_images, test_labels)``; images are uint8 ``(N, H, W)`` or
        ``(N, C, H, W)``, labels int64 ``(N,)``; the test pair is ``None`` when the folder has none.
    """
    folder = Path(folder)
    out = []
    for split in ("train", "t10k"):
        img, lab = find_idx(folder, split, "images"), find_idx(folder, split, "labels")
        if img is None or lab is None:
            if split == "train":
                raise DataError(f"{folder} has no train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]")
            out += [None, None]
            continue
        x, y = read_idx(img), read_idx(lab).long()
        if x.dtype != torch.uint8 or x.ndim not in (3, 4):
            raise DataError(
                f"{img} must hold uint8 images of shape (N, H, W) or (N, C, H, W), got {x.dtype} {tuple(x.shape)}"
            )
        if len(x) != len(y):
            raise DataError(f"{img} has {len(x)} images but {lab} has {len(y)} labels")
        out += [x, y]
    return out[0], out[1], out[2], out[3]

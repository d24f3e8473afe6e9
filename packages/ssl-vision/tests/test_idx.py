import gzip

import numpy as np
import pytest
import torch

from ssl_core.errors import DataError
from ssl_vision.data import load_idx_folder, read_idx


def write_idx(path, arr: np.ndarray, compress: bool):
    code = {np.uint8: 0x08, np.int32: 0x0C}[arr.dtype.type]
    header = bytes([0, 0, code, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    data = header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


@pytest.mark.parametrize("compress", [False, True])
def test_roundtrip(tmp_path, compress):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (7, 5, 4), dtype=np.uint8)
    write_idx(tmp_path / "x", imgs, compress)
    assert torch.equal(read_idx(tmp_path / "x"), torch.from_numpy(imgs))
    ints = rng.integers(-1000, 1000, (6,)).astype(np.int32)
    write_idx(tmp_path / "y", ints, compress)
    assert read_idx(tmp_path / "y").tolist() == ints.tolist()


def test_bad_files(tmp_path):
    (tmp_path / "junk").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(tmp_path / "junk")
    write_idx(tmp_path / "short", np.zeros((4, 3, 3), np.uint8), False)
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-5])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "short")


def test_folder_with_and_without_test_split(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((10, 6, 6), np.uint8), True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(10, dtype=np.uint8) % 2, True)
    x, y, xt, yt = load_idx_folder(tmp_path)
    assert x.shape == (10, 6, 6) and y.tolist() == [0, 1] * 5 and xt is None and yt is None
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((3, 6, 6), np.uint8), False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8), False)
    with pytest.raises(DataError, match="3 images but"):
        load_idx_folder(tmp_path)


def test_float_idx_with_nan_is_refused(tmp_path):
    arr = np.zeros((2, 3, 3), np.float32)
    arr[1, 1, 1] = np.nan
    header = bytes([0, 0, 0x0D, 3]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    (tmp_path / "x").write_bytes(header + arr.astype(">f4").tobytes())
    with pytest.raises(DataError, match=r"x holds 1 non-finite values \(1 NaN, 0 infinite\) of 18"):
        read_idx(tmp_path / "x")
    arr[1, 1, 1] = 0.5
    (tmp_path / "x").write_bytes(header + arr.astype(">f4").tobytes())
    assert read_idx(tmp_path / "x")[1, 1, 1] == 0.5

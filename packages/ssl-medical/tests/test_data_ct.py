"""The InVesalius head CT reader (Cranium.inv3 of invesalius-examples) and the CT bundle."""

import io
import plistlib
import tarfile
import warnings

import numpy as np
import pytest

from ssl_core.errors import DataError
from ssl_medical.data import ct as ct_module
from ssl_medical.data.config import MedicalDataConfig
from ssl_medical.data.ct import CRANIUM, ct_volume, read_inv3


def write_inv3(path, zyx: np.ndarray, spacing_xyz, matrix_bytes: bytes | None = None):
    """A minimal .inv3: a gzip tar with one folder holding main.plist and matrix.dat."""
    meta = {"matrix": {"dtype": "int16", "shape": list(zyx.shape)}, "spacing": list(spacing_xyz), "modality": "CT"}
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (
            ("tmpabc/main.plist", plistlib.dumps(meta)),
            ("tmpabc/matrix.dat", zyx.astype(np.int16).tobytes() if matrix_bytes is None else matrix_bytes),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.mark.skipif(
    not CRANIUM.is_file(),
    reason=f"{CRANIUM} is missing: install invesalius-examples (sudo apt-get install invesalius-examples, or "
    "./scripts/setup.sh); a dpkg path-exclude=/usr/share/doc/* drops it",
)
def test_cranium():
    ct = read_inv3()
    assert ct.hu.shape == (256, 256, 108) and ct.hu.dtype == np.float32
    np.testing.assert_allclose(ct.spacing, (0.957, 0.957, 1.5), atol=1e-3)
    assert ct.hu.min() == -1024 and ct.hu.max() == 2986
    np.testing.assert_allclose(np.diag(ct.affine)[:3], ct.spacing)
    # the volume is centred on the origin
    np.testing.assert_allclose(ct.affine[:3] @ np.array([*(np.array(ct.hu.shape) - 1) / 2, 1.0]), 0, atol=1e-6)
    # slice 0 (axis 2) is the most inferior: the jaw holds more bone than the top slice's
    assert (ct.hu[:, :, :10] > 300).sum() > (ct.hu[:, :, -3:] > 300).sum()


def test_inv3_reader_transposes_and_keeps_values(tmp_path):
    zyx = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5) * 10 - 300
    write_inv3(tmp_path / "t.inv3", zyx, (0.5, 0.6, 2.0))
    ct = read_inv3(tmp_path / "t.inv3")
    assert ct.hu.shape == (5, 4, 3) and ct.spacing == (0.5, 0.6, 2.0)
    np.testing.assert_array_equal(ct.hu, zyx.transpose(2, 1, 0))
    np.testing.assert_allclose(np.diag(ct.affine), [0.5, 0.6, 2.0, 1.0])


def test_inv3_bad_inputs(tmp_path):
    with pytest.raises(DataError, match="invesalius-examples"):
        read_inv3(tmp_path / "missing.inv3")
    write_inv3(tmp_path / "short.inv3", np.zeros((2, 3, 4)), (1, 1, 1), matrix_bytes=b"\0" * 10)
    with pytest.raises(DataError, match="10 bytes"):
        read_inv3(tmp_path / "short.inv3")
    (tmp_path / "junk.inv3").write_bytes(b"not a tar at all")
    with pytest.raises(DataError, match="cannot read"):
        read_inv3(tmp_path / "junk.inv3")


def test_ct_window_and_resampling(tmp_path):
    zyx = np.full((6, 8, 10), -1000, dtype=np.int16)
    zyx[:, :4] = 0  # water: the middle of the default window
    zyx[:, :, :2] = 3000  # bone above the window
    write_inv3(tmp_path / "t.inv3", zyx, (2.0, 2.0, 3.0))
    vol = ct_volume(MedicalDataConfig(ct_window=(-1000, 1000)), tmp_path / "t.inv3")
    # 10 x 8 x 6 voxels of 2 x 2 x 3 mm -> (n - 1) * spacing + 1 voxels of 1 mm
    assert tuple(vol.shape) == (1, 19, 15, 16)
    np.testing.assert_allclose(vol.affine.numpy()[:3, :3], np.eye(3), atol=1e-6)
    v = vol[0].numpy()
    assert v.min() == 0.0 and v.max() == 1.0
    np.testing.assert_allclose(v[:1, -1], 1.0)  # bone clipped to 1
    np.testing.assert_allclose(v[10:, :5], 0.5, atol=1e-6)  # water
    np.testing.assert_allclose(v[10:, 8:], 0.0, atol=1e-6)  # air
    with pytest.raises(DataError, match="ct_window"):
        ct_volume(MedicalDataConfig(ct_window=(100, -100)), tmp_path / "t.inv3")


def test_ct_bundle_is_cached_and_probes_skip_without_atlas(tmp_path, monkeypatch):
    from ssl_medical.data.load import load_data

    zyx = np.full((40, 40, 40), -1000, dtype=np.int16)
    zyx[10:30, 10:30, 10:30] = 40
    write_inv3(tmp_path / "t.inv3", zyx, (1.0, 1.0, 1.0))
    monkeypatch.setattr(ct_module, "CRANIUM", tmp_path / "t.inv3")
    monkeypatch.setenv("SELFSUP_MRICRON_TEMPLATES", str(tmp_path / "no_atlas"))
    cfg = MedicalDataConfig(path="ct", patch_size=(16, 16, 16), patches_per_epoch=5, cache_dir=str(tmp_path / "c"))
    with pytest.warns(UserWarning, match="no region probe"):
        bundle = load_data(cfg)
    assert len(list((tmp_path / "c").glob("cranium_*.npy"))) == 1 and not list((tmp_path / "c").glob("*.tmp"))
    assert bundle.probe_train is None and "no probes" in bundle.description and "Cranium" in bundle.description
    x = bundle.train[0]
    assert tuple(x.shape) == (1, 16, 16, 16) and float(x.max()) > 0.5  # centred on tissue
    monkeypatch.setattr(ct_module, "ct_volume", lambda *a: pytest.fail("the cached CT was not used"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = load_data(cfg)
    np.testing.assert_array_equal(again.train.volumes[0].volume, bundle.train.volumes[0].volume)

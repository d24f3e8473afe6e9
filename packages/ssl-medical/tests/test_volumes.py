"""User volumes: NIfTI files and DICOM series folders, their bad inputs, PatchDataset and streaming."""

import copy
import gzip
import pickle
import warnings

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from ssl_core.errors import DataError
from ssl_medical.data.config import MedicalDataConfig
from ssl_medical.data.load import load_data
from ssl_medical.data.volumes import (
    InMemoryVolume,
    PatchDataset,
    StreamedVolume,
    find_volumes,
    load_volume,
    volume_dataset,
)
from ssl_medical.info import VolumeInfo

CFG = MedicalDataConfig(patch_size=(8, 8, 8), patches_per_epoch=6)


def save(path, data, affine=None):
    nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4) if affine is None else affine), str(path))
    return path


def blob(shape=(20, 22, 24), seed=0) -> np.ndarray:
    """Noise in a bright box inside a dark background."""
    v = np.zeros(shape, dtype=np.float32)
    v[4:-4, 4:-4, 4:-4] = 100 + np.random.default_rng(seed).random(tuple(s - 8 for s in shape)) * 100
    return v


def dicom_series(folder, n=4, uid=None, start=1):
    """``n`` slices of pydicom's CT_small.dcm as one series (new UIDs, positions 5 mm apart)."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    uid = uid or generate_uid()
    for k in range(n):
        ds = copy.deepcopy(base)
        ds.SeriesInstanceUID, ds.SOPInstanceUID = uid, generate_uid()
        ds.InstanceNumber = start + k
        ds.ImagePositionPatient = [0.0, 0.0, 5.0 * (start + k)]
        ds.save_as(folder / f"slice{start + k:03d}.dcm")
    return uid


def test_nifti_is_reoriented_resampled_and_scaled(tmp_path):
    v = blob()
    ras = load_volume(save(tmp_path / "ras.nii.gz", v), CFG)
    assert ras.shape == v.shape and ras.dtype == np.float32 and ras.min() == 0.0 and ras.max() == 1.0
    # the same data stored left-to-right flipped with an LAS affine loads as the same RAS volume
    las = np.diag([-1.0, 1, 1, 1])
    las[0, 3] = v.shape[0] - 1
    np.testing.assert_allclose(load_volume(save(tmp_path / "las.nii.gz", v[::-1].copy(), las), CFG), ras, atol=1e-6)
    # anisotropic 2 x 1 x 1.5 mm: resampled to 1 mm, a linear ramp stays a linear ramp
    ramp = np.broadcast_to(np.arange(20, dtype=np.float32)[:, None, None], (20, 22, 24)).copy()
    out = load_volume(save(tmp_path / "aniso.nii.gz", ramp, np.diag([2.0, 1, 1.5, 1])), CFG)
    assert out.shape == (39, 22, 36)  # MONAI Spacing's output size
    prof = out[:, 5, 5]
    np.testing.assert_allclose(np.diff(prof[2:-2]), np.diff(prof[2:-2]).mean(), atol=1e-5)


def test_2d_and_4d_nifti(tmp_path):
    with pytest.raises(DataError, match="2-D image.*3-D volume is expected"):
        load_volume(save(tmp_path / "flat.nii.gz", np.ones((10, 12), np.float32)), CFG)
    one = load_volume(save(tmp_path / "one.nii.gz", blob()[..., None]), CFG)  # (X, Y, Z, 1): squeezed
    assert one.shape == (20, 22, 24)
    with pytest.raises(DataError, match="3 volumes.*split it"):
        load_volume(save(tmp_path / "four.nii.gz", np.ones((10, 10, 10, 3), np.float32)), CFG)


def test_nan_and_corrupt_files(tmp_path):
    v = blob()
    v[5, 5, 5] = np.nan
    with pytest.raises(DataError, match="non-finite"):
        load_volume(save(tmp_path / "nan.nii.gz", v), CFG)
    good = save(tmp_path / "good.nii.gz", blob()).read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="cut.nii.gz"):
        load_volume(tmp_path / "cut.nii.gz", CFG)
    (tmp_path / "junk.nii.gz").write_bytes(gzip.compress(b"no header here"))
    with pytest.raises(DataError, match="cannot read.*junk.nii.gz"):
        load_volume(tmp_path / "junk.nii.gz", CFG)


def test_volume_smaller_than_the_patch(tmp_path):
    save(tmp_path / "small.nii.gz", np.ones((20, 22, 6), np.float32))
    with pytest.raises(DataError, match=r"\(20, 22, 6\) voxels, smaller than data.patch_size=\(8, 8, 8\)"):
        volume_dataset(tmp_path / "small.nii.gz", CFG)


def test_dicom_series_loads_and_skips_non_dicom_files(tmp_path):
    dicom_series(tmp_path / "s", n=4)
    (tmp_path / "s" / "notes.txt").write_text("not an image")
    with pytest.warns(UserWarning, match=r"skipped 1 file.*notes.txt \(not DICOM\)"):
        vol = load_volume(tmp_path / "s", CFG)
    # 128 x 128 pixels of 0.661 mm, 4 slices 5 mm apart, resampled to 1 mm
    assert vol.shape == (85, 85, 16) and vol.min() >= 0.0 and vol.max() <= 1.0 and vol.max() > 0.5


def test_dicom_bad_inputs(tmp_path):
    from pydicom.data import get_testdata_file

    dicom_series(tmp_path / "mixed", n=2, uid="1.2.3.4")
    dicom_series(tmp_path / "mixed", n=2, uid="1.2.3.5", start=10)
    with pytest.raises(DataError, match=r"mixes 2 DICOM series \(1\.2\.3\.4 .*2 slices; 1\.2\.3\.5 .*own folder"):
        load_volume(tmp_path / "mixed", CFG)
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "ct.dcm").write_bytes(open(get_testdata_file("CT_small.dcm"), "rb").read())
    with pytest.raises(DataError, match="single DICOM slice.*3-D volume is expected"):
        load_volume(tmp_path / "one", CFG)
    with pytest.raises(DataError, match="one DICOM file.*2-D"):
        find_volumes(tmp_path / "one" / "ct.dcm")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no NIfTI files"):
        find_volumes(tmp_path / "empty")


def test_folder_of_volumes_and_foreground_patches(tmp_path):
    save(tmp_path / "a.nii.gz", blob(seed=1))
    save(tmp_path / "b.nii", blob((24, 20, 30), seed=2))
    dicom_series(tmp_path / "series", n=3)
    (tmp_path / "readme.md").write_text("ignored")
    assert [p.name for p in find_volumes(tmp_path)] == ["a.nii.gz", "b.nii", "series"]
    ds, lines = volume_dataset(tmp_path, CFG)
    assert len(ds) == 6 and len(ds.volumes) == 3 and len(lines) == 3
    torch.manual_seed(0)
    items = [ds[i] for i in range(30)]
    torch.manual_seed(0)
    assert all(torch.equal(a, ds[i]) for i, a in enumerate(items))  # randomness from torch's global generator
    for x in items:
        assert x.shape == (1, 8, 8, 8) and x.dtype == torch.float32
        assert float(x.max()) > 0.1  # centred on foreground, never empty air


def test_patches_cover_the_borders_without_leaving_the_volume():
    vol = np.ones((10, 10, 10), np.float32)
    ds = PatchDataset([InMemoryVolume(vol, (8, 8, 8))], 50)
    torch.manual_seed(0)
    assert all(tuple(ds[i].shape) == (1, 8, 8, 8) and bool((ds[i] == 1).all()) for i in range(50))


def test_streaming_equals_in_memory(tmp_path):
    v = blob((30, 26, 28))
    path = save(tmp_path / "big.nii", v)
    cfg = MedicalDataConfig(patch_size=(8, 8, 8), patches_per_epoch=4, max_in_memory_mb=0.01)
    ds, lines = volume_dataset(path, cfg)
    vol = ds.volumes[0]
    assert isinstance(vol, StreamedVolume) and "streamed" in lines[0]
    lo, hi = vol.lo, vol.hi
    np.testing.assert_allclose((lo, hi), np.percentile(v, (0.5, 99.5)))  # stride 1 on a small file
    for start in [(0, 0, 0), (3, 7, 11), (22, 18, 20)]:
        want = np.clip(
            (v[start[0] : start[0] + 8, start[1] : start[1] + 8, start[2] : start[2] + 8] - lo) / (hi - lo), 0, 1
        )
        np.testing.assert_allclose(vol.read(start), want, atol=1e-6)
    torch.manual_seed(0)
    assert ds[0].shape == (1, 8, 8, 8)
    # the memory map never travels to DataLoader workers
    vol._data()
    assert vol._proxy is not None and pickle.loads(pickle.dumps(vol))._proxy is None
    assert len(pickle.dumps(ds)) < vol.centres.nbytes + 4096  # candidate centres, no voxels
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(vol)).read((1, 2, 3)), vol.read((1, 2, 3)))


def test_streaming_reorients_patches_to_ras(tmp_path):
    v = blob((30, 26, 28))
    aff = np.array([[0, 0, -1.0, 27], [1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1]])  # axes: S? -> permuted, flipped
    path = save(tmp_path / "odd.nii", v, aff)
    vol = StreamedVolume(path, (6, 7, 8))
    canon = np.asarray(nib.as_closest_canonical(nib.load(str(path))).dataobj, dtype=np.float32)
    ornt = vol.ornt
    # the native box at `start` is the canonical box at the corresponding (flipped, permuted) corner
    for start in [(0, 0, 0), (5, 9, 4)]:
        box = vol.box
        corner = [0, 0, 0]
        for i in range(3):
            ax, flip = int(ornt[i, 0]), ornt[i, 1] < 0
            corner[ax] = v.shape[i] - start[i] - box[i] if flip else start[i]
        want = canon[corner[0] : corner[0] + 6, corner[1] : corner[1] + 7, corner[2] : corner[2] + 8]
        np.testing.assert_allclose(vol.read(start), np.clip((want - vol.lo) / (vol.hi - vol.lo), 0, 1), atol=1e-6)


def test_large_compressed_or_dicom_volumes_are_refused(tmp_path):
    cfg = MedicalDataConfig(patch_size=(8, 8, 8), max_in_memory_mb=0.01)
    save(tmp_path / "big.nii.gz", blob((30, 26, 28)))
    with pytest.raises(DataError, match="gunzip"):
        volume_dataset(tmp_path / "big.nii.gz", cfg)
    dicom_series(tmp_path / "s", n=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match="max_in_memory_mb"):
            volume_dataset(tmp_path / "s", cfg)


def test_user_volume_bundle_without_atlas(tmp_path, monkeypatch):
    v = np.zeros((24, 24, 24), np.float32)
    v[4:20, 4:20, 4:20] = np.random.default_rng(0).random((16, 16, 16)) + 1
    nib.save(nib.Nifti1Image(v, np.eye(4)), str(tmp_path / "v.nii.gz"))
    Image.new("RGB", (8, 8)).save(tmp_path / "preview.png")  # volumes win over stray images
    monkeypatch.setenv("SELFSUP_MRICRON_TEMPLATES", str(tmp_path / "none"))
    cfg = MedicalDataConfig(path=str(tmp_path), patch_size=(16, 16, 16), patches_per_epoch=7)
    with pytest.warns(UserWarning, match="no region probe.*mricron-data"):
        b = load_data(cfg)
    assert len(b.train) == 7 and b.train[0].shape == (1, 16, 16, 16)
    assert b.info == VolumeInfo(patch_size=(16, 16, 16), spacing=(1.0, 1.0, 1.0))
    assert b.probe_train is None and b.probe_test is None and b.extra_probes == {}
    assert "v.nii.gz (24, 24, 24)" in b.description and "no probes" in b.description

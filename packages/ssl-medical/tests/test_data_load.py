"""``load_data``: dispatch by ``data.path`` and the layout of the volume bundles."""

import warnings

import pytest
import torch
from PIL import Image

import ssl_medical.data.signals as signals
import ssl_medical.data.tiles as tiles
from ssl_core.data import flatten_features
from ssl_core.errors import DataError
from ssl_medical.data.atlas import templates_dir
from ssl_medical.data.config import MedicalDataConfig
from ssl_medical.data.load import load_data
from ssl_medical.info import VolumeInfo


@pytest.fixture
def stubs(monkeypatch):
    """Replace the signal and tile loaders (other helpers' code) by stubs that record their calls."""
    calls = []
    monkeypatch.setattr(signals, "load_signal_data", lambda cfg: calls.append(("signals", cfg.path)) or "S")
    monkeypatch.setattr(tiles, "load_tile_data", lambda cfg: calls.append(("tiles", cfg.path)) or "T")
    return calls


def test_dispatch(stubs, tmp_path):
    for path in ("ecg5000", "ECG5000", "ucr:ECG200", "ecg_dicom:/x.dcm"):
        assert load_data(MedicalDataConfig(path=path)) == "S"
    assert load_data(MedicalDataConfig(path="pathology")) == "T"
    (tmp_path / "tiles" / "tumour").mkdir(parents=True)
    Image.new("RGB", (70, 70)).save(tmp_path / "tiles" / "tumour" / "a.png")
    assert load_data(MedicalDataConfig(path=str(tmp_path / "tiles"))) == "T"
    assert [c[0] for c in stubs] == ["signals"] * 4 + ["tiles"] * 2
    with pytest.raises(DataError, match="'nowhere' is neither a data set.*nor an existing file"):
        load_data(MedicalDataConfig(path="nowhere"))


@pytest.mark.skipif(not (templates_dir() / "aal.nii.gz").is_file(), reason="mricron-data is not installed")
def test_mri_bundle_layout(tmp_path):
    cfg = MedicalDataConfig(probe_per_region=2, patches_per_epoch=11, fewshot_seg=False, cache_dir=str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no stray warnings on the default data
        b = load_data(cfg)
    assert len(b.train) == 11
    torch.manual_seed(0)
    x = b.train[3]
    assert x.shape == (1, 32, 32, 32) and x.dtype == torch.float32 and 0 <= float(x.min()) <= float(x.max()) <= 1
    assert b.info == VolumeInfo()
    assert b.probe_train.inputs.shape == b.probe_test.inputs.shape == (108, 1, 32, 32, 32)
    assert len(b.probe_train.class_names) == 54 and b.raw_features is flatten_features
    assert b.raw_features(b.probe_train.inputs[:2]).shape == (2, 32**3)
    assert b.description.startswith("Colin27 T1 MRI") and "54 classes" in b.description
    assert b.extra_probes == {}  # fewshot_seg off


@pytest.mark.skipif(not (templates_dir() / "aal.nii.gz").is_file(), reason="mricron-data is not installed")
def test_fewshot_dice_column_is_wired():
    from ssl_medical.data.atlas import load_atlas
    from ssl_medical.data.load import _extra_probes

    atlas = load_atlas()
    extra = _extra_probes(atlas, MedicalDataConfig())
    assert list(extra) == ["fewshot_dice"] and callable(extra["fewshot_dice"])
    assert extra["fewshot_dice"]("raw_input", None, "cpu", None) is None  # no backbone: no score
    assert _extra_probes(atlas, MedicalDataConfig(fewshot_seg=False)) == {}
    assert _extra_probes(None, MedicalDataConfig()) == {}

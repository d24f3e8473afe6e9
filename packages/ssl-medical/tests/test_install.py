"""MONAI, nibabel and pydicom work here, offline."""

import nibabel as nib
import numpy as np
import torch

import ssl_medical


def test_nifti_roundtrip_and_monai_transform(tmp_path):
    vol = np.random.default_rng(0).random((8, 9, 10)).astype(np.float32)
    nib.save(nib.Nifti1Image(vol, affine=np.eye(4)), tmp_path / "v.nii.gz")
    back = nib.load(tmp_path / "v.nii.gz").get_fdata()
    np.testing.assert_allclose(back, vol, rtol=1e-6)
    from monai.transforms import ScaleIntensity

    scaled = ScaleIntensity()(torch.from_numpy(vol)[None])
    assert float(scaled.min()) == 0.0 and abs(float(scaled.max()) - 1.0) < 1e-6
    assert ssl_medical.__version__


def test_pydicom_reads_its_bundled_ct():
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    ds = dcmread(get_testdata_file("CT_small.dcm"))
    assert ds.pixel_array.shape == (128, 128) and ds.Modality == "CT"

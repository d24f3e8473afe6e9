"""The MRI atlas (mricron-data) and the AAL region probe."""

import numpy as np
import pytest
import torch

from ssl_core.errors import DataError
from ssl_medical.data.atlas import extract_patches, load_atlas, probe_centres, region_probe_splits, templates_dir
from ssl_medical.data.config import MedicalDataConfig

needs_atlas = pytest.mark.skipif(
    not (templates_dir() / "aal.nii.gz").is_file(),
    reason="the Debian package mricron-data is not installed (sudo apt-get install mricron-data, or "
    "./scripts/setup.sh)",
)


@pytest.fixture(scope="module")
def atlas():
    return load_atlas()


@needs_atlas
def test_atlas_grid_and_names(atlas):
    assert atlas.image.shape == atlas.labels.shape == (181, 217, 181)
    assert atlas.image.dtype == np.float32 and atlas.image.min() == 0.0 and atlas.image.max() == 1.0
    np.testing.assert_allclose(atlas.affine[:3, :3], np.eye(3))
    np.testing.assert_allclose(atlas.affine[:3, 3], [-90, -125, -71])
    assert len(atlas.names) == 116 and atlas.names[1] == "Precentral_L" and atlas.names[2] == "Precentral_R"
    assert set(np.unique(atlas.labels).tolist()) == set(range(117))


@needs_atlas
def test_region_classes_merge_left_and_right(atlas):
    classes = atlas.region_classes()
    assert len(classes) == 54
    for lid, rid, name in classes:
        assert lid % 2 == 1 and rid == lid + 1 and lid < 109
        assert atlas.names[lid] == name + "_L" and atlas.names[rid] == name + "_R"
    cmap = atlas.class_map()
    assert cmap.min() == -1 and cmap.max() == 53
    assert (cmap[atlas.labels >= 109] == -1).all() and (cmap[atlas.labels == 0] == -1).all()
    assert (cmap[atlas.labels == 1] == 0).all() and (cmap[atlas.labels == 2] == 0).all()


@needs_atlas
def test_probe_centres_lie_in_their_regions(atlas):
    c = probe_centres(atlas, 3, seed=0)
    assert c.train.shape == c.test.shape == (162, 3)
    cmap = atlas.class_map()
    # the merged class of each centre voxel is its label; train voxels are left (odd ids), test voxels right
    assert (cmap[tuple(c.train.T)] == c.train_labels).all() and (cmap[tuple(c.test.T)] == c.test_labels).all()
    assert (atlas.labels[tuple(c.train.T)] % 2 == 1).all() and (atlas.labels[tuple(c.test.T)] % 2 == 0).all()
    np.testing.assert_array_equal(c.train_labels, c.test_labels)
    np.testing.assert_array_equal(np.bincount(c.train_labels), np.full(54, 3))
    # left is at negative x (low index on axis 0), right at positive x
    assert (c.train[:, 0] < 90).mean() > 0.9 and (c.test[:, 0] > 90).mean() > 0.9


@needs_atlas
def test_probe_splits_layout_and_determinism(atlas, tmp_path):
    cfg = MedicalDataConfig(probe_per_region=2, cache_dir=str(tmp_path))
    tr, te = region_probe_splits(atlas, cfg)
    assert tr.inputs.shape == te.inputs.shape == (108, 1, 32, 32, 32) and tr.inputs.dtype == torch.float32
    assert len(tr.class_names) == 54 and tr.class_names[0] == "Precentral"
    assert tr.labels.tolist() == te.labels.tolist() == [c for c in range(54) for _ in range(2)]
    # the centre voxel sits at index 16 of its patch
    cen = probe_centres(atlas, 2, seed=0)
    for i in (0, 50, 107):
        assert float(tr.inputs[i, 0, 16, 16, 16]) == atlas.image[tuple(cen.train[i])]
        assert float(te.inputs[i, 0, 16, 16, 16]) == atlas.image[tuple(cen.test[i])]
    tr2, te2 = region_probe_splits(atlas, cfg)
    assert torch.equal(tr.inputs, tr2.inputs) and torch.equal(te.inputs, te2.inputs)
    tr3, _ = region_probe_splits(atlas, MedicalDataConfig(probe_per_region=2, seed=1))
    assert not torch.equal(tr.inputs, tr3.inputs)


@needs_atlas
def test_mirrored_test_patches_are_the_exact_mirror(atlas):
    cfg = MedicalDataConfig(probe_per_region=1, probe_mirror=True)
    _, te = region_probe_splits(atlas, cfg)
    cen = probe_centres(atlas, 1, seed=0)
    img = atlas.image
    for i in range(0, 54, 13):
        x, y, z = cen.test[i]
        # the patch of the mirrored MRI centred on the mirrored voxel: element k of axis 0 is voxel x + 16 - k
        want = np.stack([img[x + 16 - k, y - 16 : y + 16, z - 16 : z + 16] for k in range(32)])
        np.testing.assert_array_equal(te.inputs[i, 0].numpy(), want)
    # the mirror of a left patch lands on right anatomy: mirrored test patches look like the left ones
    lab = atlas.labels
    assert ((lab[::-1] == lab + 1) & (lab % 2 == 1) & (lab < 109)).sum() / ((lab % 2 == 1) & (lab < 109)).sum() > 0.6


def test_patches_are_zero_padded_at_the_border():
    vol = np.ones((10, 12, 14), dtype=np.float32)
    p = extract_patches(vol, np.array([[0, 0, 0], [9, 11, 13], [5, 6, 7]]), 8)
    assert p.shape == (3, 8, 8, 8)
    assert (p[0, :4] == 0).all() and (p[0, 4:, 4:, 4:] == 1).all()
    assert (p[1, 6:] == 0).all() and (p[1, :5, :5, :5] == 1).all()
    assert (p[2] == 1).all()


def test_missing_atlas_names_the_debian_package(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="mricron-data"):
        load_atlas(tmp_path)
    monkeypatch.setenv("SELFSUP_MRICRON_TEMPLATES", str(tmp_path))
    with pytest.raises(DataError, match="apt-get install mricron-data"):
        load_atlas()

"""Rendered scenes: calibration (a visible point's pixel shows its object), determinism, labels, cache, bundle."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ssl_core.errors import ConfigError, DataError
from ssl_pointcloud.scenes import (
    CLASSES,
    SceneConfig,
    SegmentationProbe,
    camera_rays,
    generate_scenes,
    load_scene_data,
    load_scenes,
    project,
    render_scene,
    scene_arrays,
    scene_label,
    scene_rng,
)

SMALL = SceneConfig(num_scenes=3, num_points=256, image_size=32, n_segments=16)


@pytest.fixture(scope="module")
def scenes():
    return [render_scene(scene_rng(0, "train", i), SceneConfig()) for i in range(6)]


def test_visible_points_project_onto_their_own_object(scenes):
    for s in scenes:
        vis = s.pixel >= 0
        assert vis.sum() > 50
        # the camera's ray-cast object at each visible point's pixel is the point's object (up to pixel edges)
        agree = s.pixel_object.reshape(-1)[s.pixel[vis]] == s.objects[vis]
        assert agree.mean() > 0.97
        # its pixel is its projection, and the camera's depth map there agrees with its depth
        uv, z = project(s.world[vis], s.K, s.R, s.t)
        size = s.image.shape[0]
        assert np.array_equal(np.floor(uv[:, 1]) * size + np.floor(uv[:, 0]), s.pixel[vis])
        assert np.mean(np.abs(s.depth.reshape(-1)[s.pixel[vis]] - z) <= 0.05 * z) > 0.97
        # hidden points inside the image lie behind the surfaces the camera sees around their pixel (the
        # occlusion test is exact, at the sub-pixel position: compare with the nearest depth of the 3 x 3 pixels)
        uv_h, z_h = project(s.world[~vis], s.K, s.R, s.t)
        inside = np.all((uv_h >= 0) & (uv_h < size), 1) & (z_h > 0)
        ij = np.floor(uv_h[inside]).astype(int)
        pad = np.pad(s.depth, 1, constant_values=np.inf)
        nearest = np.min([pad[1 + ij[:, 1] + a, 1 + ij[:, 0] + b] for a in (-1, 0, 1) for b in (-1, 0, 1)], 0)
        assert np.all(z_h[inside] > nearest)


def test_camera_rays_and_projection_are_inverse(scenes):
    s = scenes[0]
    size = s.image.shape[0]
    rays = camera_rays(s.K, s.R, s.t, size)
    hit = np.isfinite(s.depth)
    world = rays[..., :3] + s.depth[..., None] * rays[..., 3:]  # the camera's hit points
    uv, z = project(world[hit], s.K, s.R, s.t)
    j, i = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5)
    np.testing.assert_allclose(uv, np.stack([j[hit], i[hit]], 1), atol=1e-6)
    np.testing.assert_allclose(z, s.depth[hit], rtol=1e-6)


def test_labels_superpixels_and_normalisation(scenes):
    for s in scenes:
        assert np.array_equal(s.labels, s.object_class[s.objects])
        assert s.object_class[0] == CLASSES.index("ground") and np.all(s.object_class[1:] > 0)
        assert 3 <= len(s.object_class) - 1 <= 6
        ground = s.labels == 0
        assert np.all(np.abs(s.world[ground, 2]) < 1e-3)  # the lidar sees the slab's top, z = 0
        assert np.all(s.world[~ground, 2] > -1e-3)  # objects rest on it
        vis = s.pixel >= 0
        assert np.array_equal(s.point_superpixel[vis], s.superpixels.reshape(-1)[s.pixel[vis]])
        assert np.all(s.point_superpixel[~vis] == -1)
        assert abs(np.linalg.norm(s.points, axis=1).max() - 1) < 1e-5
        np.testing.assert_allclose(s.points.mean(0), 0, atol=1e-5)
        assert s.image.dtype == np.uint8 and s.image.shape == (64, 64, 3)


def test_scenes_are_deterministic_by_seed():
    a = generate_scenes(SMALL)
    b = generate_scenes(SMALL)
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    c = generate_scenes(SceneConfig(**{**SMALL.__dict__, "seed": 1}))
    assert not np.array_equal(a["points"], c["points"])
    d = generate_scenes(SMALL, "probe_test")
    assert not np.array_equal(a["points"], d["points"])


def test_cache_round_trip_and_dataset(tmp_path):
    a = scene_arrays(SMALL, "train", tmp_path)
    files = list(tmp_path.glob("scenes-*.npz"))
    assert len(files) == 1 and SMALL.key("train") in files[0].name
    b = scene_arrays(SMALL, "train", tmp_path)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    item = load_scenes(SMALL, "train", tmp_path)[1]
    assert item["points"].shape == (256, 3) and item["image"].shape == (3, 32, 32)
    assert item["image"].dtype == torch.uint8 and item["superpixels"].shape == (32, 32)
    vis = item["pixel"] >= 0
    assert torch.equal(item["point_superpixel"][vis], item["superpixels"].reshape(-1)[item["pixel"][vis]])


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="min_objects"):
        SceneConfig(min_objects=5, max_objects=2)
    with pytest.raises(ConfigError, match="split"):
        generate_scenes(SMALL, "validation")
    assert DataError  # the generator raises it when the lidar hits nothing (never for valid settings)


def test_scene_bundle_and_raw_segmentation_probe(tmp_path):
    cfg = SimpleNamespace(
        num_points=128, seed=0, cache_dir=str(tmp_path), train_scenes=4, probe_train_scenes=6, probe_test_scenes=3
    )
    bundle = load_scene_data(cfg)
    assert len(bundle.train) == 4 and bundle.info.num_points == 128
    assert len(bundle.probe_train.inputs) == 6 and bundle.probe_train.inputs[0].shape == (128, 3)
    labels = bundle.probe_test.labels
    expect = scene_label(bundle.extra_probes["seg_miou"].test.arrays["labels"])
    assert torch.equal(labels, torch.from_numpy(expect))
    probe = bundle.extra_probes["seg_miou"]
    assert isinstance(probe, SegmentationProbe)
    score = probe("raw_input", None, "cpu", None)
    assert 0.0 <= score <= 1.0
    assert probe("mfcc", None, "cpu", None) is None
    assert probe("other", None, "cpu", torch.nn.Linear(3, 3)) is None  # no point_features: not scored


def test_scene_label_is_the_majority_primitive():
    labels = np.array([[0, 0, 0, 1, 2, 2], [0, 5, 5, 5, 3, 0]])
    assert scene_label(labels).tolist() == [1, 4]  # indices into PRIMITIVES: sphere, torus

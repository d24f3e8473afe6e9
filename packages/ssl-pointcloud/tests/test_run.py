"""`selfsup pretrain pointcloud/<method>` end to end (in process) on tiny data: training, the probes with their
baselines (D2, pooled FPFH) and extra columns (linear SVM, few-shot; seg_miou on scenes), evaluation of the
checkpoint, export and reload, and `register` reading a registration run."""

import json

import numpy as np
import pytest

import ssl_core
from ssl_core.run import evaluate, pretrain
from ssl_core.testing.export_checks import assert_export_matches_run
from ssl_pointcloud.registration import register

pytestmark = pytest.mark.slow

# 12 shapes x (2 pretraining, 10 probe-train, 20 probe-test) clouds of 256 points, a few steps
TINY_DATA = [
    "data.num_points=256", "data.pretrain_per_class=2", "data.probe_train_per_class=10",
    "data.probe_test_per_class=20", "data.fewshot_episodes=2", "train.progress=false", "train.max_minutes=null",
    "train.batch_size=8", "probe.k=3",
]  # fmt: skip
SMALL_TRANSFORMER = [
    "method.backbone.num_groups=16", "method.backbone.group_size=16", "method.backbone.width=32",
    "method.backbone.depth=1", "method.backbone.heads=2", "method.backbone.pointnet_dims=[16,16,16]",
    "method.decoder_depth=1", "method.decoder_heads=2",
]  # fmt: skip


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("pointcloud-cache")


def run(tmp_path, cache, key, *overrides, rows=("pretrained", "random_init", "raw_input", "fpfh")):
    out = pretrain(key, out=tmp_path / "run", max_steps=2, overrides=[f"data.cache_dir={cache}", *overrides])
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == list(rows)
    for name, row in metrics.items():
        assert all(0 <= row[k] <= 1 for k in ("knn_top1", "linear_top1")), (name, row)
    return out, metrics


def test_point_mae_runs_probes_and_exports(tmp_path, cache):
    out, metrics = run(tmp_path, cache, "pointcloud/point_mae", *TINY_DATA, *SMALL_TRANSFORMER)
    for row in metrics.values():
        assert 0 <= row["svm"] <= 1 and 0 <= row["fewshot"] <= 1
    assert evaluate(out) == metrics  # the same checkpoint gives the same probes
    export = ssl_core.export_backbone(out, tmp_path / "export")
    assert_export_matches_run(out, export, n=3)


def test_registration_run_is_read_by_register(tmp_path, cache):
    out, _ = run(
        tmp_path, cache, "pointcloud/registration", *TINY_DATA, "data.svm=false", "data.fewshot_episodes=0",
        "method.num_points=64", "method.backbone.k=8",
    )  # fmt: skip
    rng = np.random.default_rng(0)
    source = rng.standard_normal((300, 3)) * [1.0, 0.6, 0.3]
    angle = np.pi / 2
    r = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    transform = register(source, source @ r.T + [0.3, 0.0, -0.1], run=out)
    assert transform.shape == (4, 4)
    np.testing.assert_allclose(transform[:3, :3] @ transform[:3, :3].T, np.eye(3), atol=1e-5)
    np.testing.assert_allclose(transform[3], [0, 0, 0, 1])
    export = ssl_core.export_backbone(out, tmp_path / "export")
    assert_export_matches_run(out, export, n=3)


def test_slidr_runs_on_scenes_with_segmentation_probe(tmp_path, cache):
    out, metrics = run(
        tmp_path, cache, "pointcloud/slidr", "data.num_points=256", "data.train_scenes=8",
        "data.probe_train_scenes=6", "data.probe_test_scenes=6", "train.progress=false", "train.max_minutes=null",
        "train.batch_size=4", "probe.k=3", f"method.cache_dir={cache}", "method.teacher_config.steps=2",
        "method.teacher_config.num_images=8", "method.teacher_config.batch_size=4", "method.backbone.k=8",
        rows=("pretrained", "random_init", "raw_input"),
    )  # fmt: skip
    for row in metrics.values():
        assert 0 <= row["seg_miou"] <= 1

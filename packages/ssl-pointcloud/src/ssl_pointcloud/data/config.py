"""The point-cloud data configuration, the data sets it can load, and where generated data is cached."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ssl_core.errors import ConfigError
from ssl_core.io import modality_cache

DATASETS = {
    "shapes": "generated shapes (default): 12 deformed open3d primitives (box, sphere, cylinder, cone, pyramid, torus, "
    "arrow, octahedron, tetrahedron, mobius, capsule, jack), upright (data.rotation=so3: any orientation), "
    "ray-cast partial views with sensor noise; 3,600 to pretrain, 480 / 240 labelled to probe (disjoint seeds); "
    "cached",
    "cgal": "--data cgal: pretrain on CGAL's demo meshes and point sets (Debian libcgal-demo; unlabelled): 8 ray-cast "
    "views of each of its 142 meshes + 22 point sets = 1,158 clouds; probes on the generated shapes",
    "scenes": "--data scenes: SLidR's rendered scenes of coloured primitives on a ground plane: a camera image, "
    "SLIC superpixels and a lidar cloud from a second pose with per-point classes; 1,000 to pretrain, 150 / 75 to "
    "probe (seg_miou); generated and cached",
    "path": "--data PATH: a folder of PLY/PCD/XYZ/PTS clouds, OFF/OBJ/STL/PLY meshes or NPY/TXT arrays; "
    "<class>/{train,test}/ (ModelNet40 layout), <class>/ (split by class), or flat (unlabelled, no probes)",
}


@dataclass
class PointDataConfig:
    """Which point clouds to load (``--set data.<name>=<value>``).

    Args:
        path: ``None`` (default): generated shapes (:mod:`ssl_pointcloud.data.shapes`); ``"cgal"``: pretrain on
            the CGAL demo meshes, probe on the generated shapes (a folder named ``cgal`` is ``./cgal``);
            ``"scenes"``: SLidR's rendered scenes (:func:`ssl_pointcloud.scenes.load_scene_data`); else a
            folder of clouds, meshes or arrays (:mod:`ssl_pointcloud.data.folder`).
        num_points: points per cloud.
        pretrain_per_class: generated pretraining clouds per shape class (12 classes).
        probe_train_per_class: generated labelled clouds per class the probes fit on.
        probe_test_per_class: generated labelled clouds per class the probes score (at least 20 for the
            few-shot probe's 20 queries per class).
        partial: generated clouds are ray-cast partial views (``True``) or whole surfaces.
        rotation: generated shapes stand upright and turn about the vertical axis (``"z"``, ModelNet40's
            protocol) or turn uniformly over SO(3) (``"so3"``).
        cgal_views: ray-cast partial views of every CGAL mesh (``path="cgal"``; 1: one cloud per file, sampled on
            the whole surface).
        sampling: how files with more points than ``num_points`` are down-sampled: ``"fps"`` (farthest point
            sampling) or ``"random"``.
        test_fraction: share of each class of a ``<class>/`` folder held out as the probe test split.
        svm: score the ``svm`` column (linear SVM on the embeddings).
        fewshot_episodes: episodes of the 5-way 10-shot ``fewshot`` column; 0 turns it off.
        train_scenes, probe_train_scenes, probe_test_scenes: scenes per split with ``path="scenes"`` (1,000,
            150, 75; :mod:`ssl_pointcloud.scenes`).
        cache_dir: where generated and read clouds are cached (default ``~/.cache/selfsup/pointcloud``).
        seed: seeds the generated sets (pretraining ``3 * seed``, probe train ``3 * seed + 1``, probe test
            ``3 * seed + 2``), the folder split and the probes.
    """

    path: str | None = None
    num_points: int = 1024
    pretrain_per_class: int = 300
    probe_train_per_class: int = 40
    probe_test_per_class: int = 20
    partial: bool = True
    rotation: str = "z"
    cgal_views: int = 8
    sampling: str = "fps"
    test_fraction: float = 0.3
    svm: bool = True
    fewshot_episodes: int = 10
    train_scenes: int = 1000
    probe_train_scenes: int = 150
    probe_test_scenes: int = 75
    cache_dir: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_points < 16:
            raise ConfigError(f"data.num_points must be at least 16, got {self.num_points}")
        if min(self.pretrain_per_class, self.probe_train_per_class, self.probe_test_per_class) < 1:
            raise ConfigError("data.pretrain_per_class, probe_train_per_class and probe_test_per_class must be >= 1")
        if self.cgal_views < 1:
            raise ConfigError(f"data.cgal_views must be at least 1, got {self.cgal_views}")
        if self.rotation not in ("z", "so3"):
            raise ConfigError(f"data.rotation must be z or so3, got {self.rotation!r}")
        if self.sampling not in ("fps", "random"):
            raise ConfigError(f"data.sampling must be fps or random, got {self.sampling!r}")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"data.test_fraction must lie in (0, 1), got {self.test_fraction}")
        if self.fewshot_episodes < 0 or self.fewshot_episodes == 1:
            raise ConfigError("data.fewshot_episodes must be 0 (off) or at least 2 (for the interval)")


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where generated and read clouds, SLidR's scenes and its teachers are written: ``cache_dir``, else
    ``~/.cache/selfsup/pointcloud`` (:func:`ssl_core.io.modality_cache`)."""
    return modality_cache("pointcloud", cache_dir)

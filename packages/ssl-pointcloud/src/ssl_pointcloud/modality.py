"""The point-cloud modality as the core discovers it (entry point ``ssl_core.modalities: pointcloud``)."""

from __future__ import annotations

from typing import Any

from ssl_core.eval.config import ProbeConfig
from ssl_core.modality import Modality, Recipe
from ssl_core.train.config import TrainConfig
from ssl_pointcloud.data import DATASETS, PointDataConfig, load_data
from ssl_pointcloud.methods.geomae import GeoMAE, GeoMAEConfig
from ssl_pointcloud.methods.point_contrast import PointContrast, PointContrastConfig
from ssl_pointcloud.methods.point_mae import PointMAE, PointMAEConfig
from ssl_pointcloud.methods.registration import Registration, RegistrationConfig
from ssl_pointcloud.methods.slidr import SLidR, SLidRConfig
from ssl_pointcloud.models import build_invariant_pointwise, build_point_transformer, build_pointwise


def _train(epochs: float, batch_size: int, lr: float, max_minutes: float = 3.5, **kw: Any) -> TrainConfig:
    # max_minutes caps training so that the default run, probes included, ends within 5 minutes on 2 cores
    return TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, max_minutes=max_minutes, log_every=5, **kw)


modality = Modality(
    name="pointcloud",
    summary="point clouds on open3d (generated shapes with ray-cast partial views by default; scenes for SLidR; "
    "CGAL meshes; PLY/PCD/XYZ/OFF/OBJ/NPY folders)",
    data_config=PointDataConfig(),
    load_data=load_data,
    recipes=Modality.recipe_map(
        Recipe(
            name="point_mae",
            method=PointMAE,
            config=PointMAEConfig(),
            summary="Point-MAE: 60% of 64 point groups masked, transformer on the visible ones, mask-token decoder "
            "predicts the masked groups' points (Chamfer L2)",
            paper="Pang, Wang, Tay, Liu, Tian, Yuan (2022), Masked Autoencoders for Point Cloud Self-supervised "
            "Learning",
            # 3 epochs took 1.7 of the 3.5 minutes (kNN 40.42%, linear 72.50%): 6 epochs, the cap decides
            train=_train(epochs=6, batch_size=32, lr=1e-3, warmup_epochs=0.1, weight_decay=0.05, betas=(0.9, 0.95)),
        ),
        Recipe(
            name="geomae",
            method=GeoMAE,
            config=GeoMAEConfig(),
            summary="GeoMAE: masked point groups predict their centroid, normal, curvature and occupancy",
            paper="Tian, Ran, Wang, Zhao (2023), GeoMAE: Masked Geometric Target Prediction for Self-supervised Point "
            "Cloud Pre-Training",
            # one data-loader worker computes the per-point normals and curvature (~22 ms per cloud) beside training
            # 3 epochs took 2.1 of the 3.5 minutes (kNN 37.08%, linear 71.25%): 5 epochs, the cap decides
            train=_train(
                epochs=5, batch_size=32, lr=1e-3, warmup_epochs=0.1, weight_decay=0.05, betas=(0.9, 0.95), num_workers=1
            ),
        ),
        Recipe(
            name="point_contrast",
            method=PointContrast,
            config=PointContrastConfig(),
            summary="PointContrast: point-level InfoNCE between matched points of two augmented views of a cloud",
            paper="Xie, Gu, Guo, Qi, Guibas, Litany (2020), PointContrast: Unsupervised Pre-training for 3D Point "
            "Cloud Understanding",
            # 3 minutes: the point-wise encoder's probes take about 1.8 minutes (4.8 min wall at a 3.5-minute cap)
            train=_train(epochs=3, batch_size=8, lr=2e-3, max_minutes=3.0, warmup_epochs=0.1, weight_decay=0.05),
            probe=ProbeConfig(batch_size=64),  # 64 clouds of 1,024 points per forward: 9.3 GiB peak at 512
        ),
        Recipe(
            name="slidr",
            method=SLidR,
            config=SLidRConfig(),
            summary="SLidR: a point-wise student distils a frozen 2-D teacher through superpixel-pooled contrast on "
            "rendered scenes; probe: per-point segmentation mIoU",
            paper="Sautier, Puy, Gidaris, Boulch, Bursuc, Marlet (2022), Image-to-Lidar Self-Supervised Distillation "
            "for Autonomous Driving Data",
            # 2.5 minutes of training: the first run also trains the default 2-D teacher (cached for later runs)
            train=_train(epochs=2.5, batch_size=8, lr=1e-3, max_minutes=2.5, warmup_epochs=0.1, weight_decay=1e-4),
            data=PointDataConfig(path="scenes"),
        ),
        Recipe(
            name="registration",
            method=Registration,
            config=RegistrationConfig(),
            summary="self-supervised registration: rotation-invariant point features matched across random rigid and "
            "mildly non-rigid views (InfoNCE + weighted Kabsch); ssl_pointcloud.registration.register",
            paper="Marin, Corona, Pons-Moll (2024), NICP: Neural ICP for 3D Human Registration at Scale; Wang, "
            "Solomon (2019), Deep Closest Point",
            train=_train(epochs=20, batch_size=16, lr=1e-3, warmup_epochs=0.5, weight_decay=0.01),
        ),
    ),
    backbones={
        "point_transformer": build_point_transformer,
        "pointwise": build_pointwise,
        "invariant_pointwise": build_invariant_pointwise,
    },
    datasets=DATASETS,
)

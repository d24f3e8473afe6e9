"""SLidR (Sautier et al., 2022, "Image-to-Lidar Self-Supervised Distillation for Autonomous Driving Data").

A frozen 2-D teacher sees the camera image, a point-wise 3-D student sees the lidar cloud of the same scene;
the calibration maps every visible point to a pixel, hence to a SLIC superpixel. Student point features and
teacher pixel features, each through a trainable linear head and L2-normalised, are averaged per superpixel,
and the superpixel-driven contrastive loss (:func:`ssl_core.losses.region_contrastive`, eq. 2 of the paper)
matches each superpixel's point feature with the same superpixel's pixel feature against the other
superpixels of the batch. Points outside the image, or occluded in it, take no part.

The teacher (:class:`~ssl_pointcloud.teacher.TeacherConfig`, :mod:`ssl_pointcloud.teacher`): by default a small
ssl-vision ResNet pretrained with SimCLR on the rendered images of the default training scenes
(:mod:`ssl_pointcloud.scenes`) when the method is built (150 steps of 32 images: 221 s on 2 cores shared with four
other training jobs, 2026-12-05), written as a selfsup export under ``~/.cache/selfsup/pointcloud/teachers/<key>``
and reused by later runs (and by the ``random_init`` row of the probes); or any exported vision backbone
(``method.teacher=<export folder>``, loaded with :func:`ssl_core.export.load_backbone`). Its dense features: a
ResNet's last feature map, or a ViT's patch tokens, upsampled bilinearly to the image size (the paper upsamples its
ResNet-50's map the same way).

Batches (:class:`ScenePretext` and its ``collate``) hold the scene clouds (randomly rotated about the
vertical axis and scaled: the point-to-pixel map goes with the points' indices, so augmenting the cloud
keeps the calibration), the images, the superpixel maps and each point's superpixel, superpixel indices
offset per scene so that they are unique in the batch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ssl_core.errors import ConfigError, DataError
from ssl_core.losses import region_contrastive
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_pointcloud.info import PointInfo
from ssl_pointcloud.models.pointwise import PointwiseConfig, PointwiseEncoder
from ssl_pointcloud.teacher import DenseTeacher, TeacherConfig, default_teacher, load_teacher

BATCH_KEYS = ("points", "image", "superpixels", "point_superpixel")


@dataclass
class SLidRConfig:
    """SLidR settings (``--set method.<name>=<value>``).

    Args:
        backbone: the point-wise student (:class:`~ssl_pointcloud.models.pointwise.PointwiseConfig`).
        proj_dim: output size of both linear heads (the paper: 64).
        temperature: of the superpixel contrastive loss (the paper: 0.07).
        teacher: an exported vision backbone folder (``selfsup export``) to distil from; ``None``: the
            default teacher of ``teacher_config``, trained (or read from the cache) when the method is built.
        teacher_config: the default teacher (:class:`TeacherConfig`).
        rotate: rotate each training cloud by a random angle about the vertical (``z``) axis.
        scale: range of a random uniform scale of each training cloud.
        cache_dir: where default teachers are cached (``None``: ``~/.cache/selfsup/pointcloud``).
    """

    backbone: PointwiseConfig = field(default_factory=PointwiseConfig)
    proj_dim: int = 64
    temperature: float = 0.07
    teacher: str | None = None
    teacher_config: TeacherConfig = field(default_factory=TeacherConfig)
    rotate: bool = True
    scale: list[float] = field(default_factory=lambda: [0.9, 1.1])
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if self.proj_dim < 1 or self.temperature <= 0:
            raise ConfigError(
                f"method.proj_dim and method.temperature must be positive, got {self.proj_dim}, {self.temperature}"
            )
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1]:
            raise ConfigError(f"method.scale must be [low, high] with 0 < low <= high, got {list(self.scale)}")


class ScenePretext:
    """SLidR's pretext: a scene sample (a dict from :class:`ssl_pointcloud.scenes.SceneDataset`) -> the cloud
    augmented (rotation about ``z``, uniform scale; torch's global generator), with its image, superpixel map
    and point superpixels unchanged. :meth:`collate` batches them and offsets the superpixel indices per
    scene.

    Args:
        rotate: draw a rotation about ``z``.
        scale: range of the uniform scale.
    """

    def __init__(self, rotate: bool = True, scale: Sequence[float] = (0.9, 1.1)) -> None:
        self.rotate, self.scale = rotate, tuple(scale)

    def __call__(self, sample: Any) -> dict[str, torch.Tensor]:
        if not isinstance(sample, dict) or any(k not in sample for k in BATCH_KEYS):
            raise DataError(
                "SLidR trains on rendered scenes (a camera image, a lidar cloud and their superpixels), got "
                f"{type(sample).__name__} samples; train it on the scene data (data.path=scenes, its recipe's "
                "default)"
            )
        points = sample["points"].float()
        if self.rotate:
            a = float(torch.rand(()) * 2 * math.pi)
            c, s = math.cos(a), math.sin(a)
            rot = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
            points = points @ rot.T
        lo, hi = self.scale
        points = points * (lo + float(torch.rand(())) * (hi - lo))
        return {k: sample[k] for k in BATCH_KEYS} | {"points": points}

    def collate(self, items: Sequence[dict[str, torch.Tensor]]) -> dict[str, Any]:
        """Stack the items; superpixel ``s`` of scene ``b`` becomes ``b * R + s`` with ``R`` the largest
        superpixel count of the batch (``num_regions = B R``), ``-1`` stays ``-1``.

        Shapes:
            - output: ``points (B, N, 3)``, ``image (B, 3, H, W)`` uint8, ``superpixels (B, H, W)``,
              ``point_superpixel (B, N)``, ``num_regions`` int
        """
        per = max(int(it["superpixels"].max()) + 1 for it in items)
        offsets = [b * per for b in range(len(items))]
        sp = torch.stack([it["superpixels"].long() + o for it, o in zip(items, offsets, strict=True)])
        psp = torch.stack(
            [
                torch.where(it["point_superpixel"] >= 0, it["point_superpixel"] + o, -1)
                for it, o in zip(items, offsets, strict=True)
            ]
        )
        return {
            "points": torch.stack([it["points"] for it in items]),
            "image": torch.stack([it["image"] for it in items]),
            "superpixels": sp,
            "point_superpixel": psp,
            "num_regions": per * len(items),
        }


class SLidR(Method):
    """SLidR: a point-wise student distilled from a frozen image teacher through superpixel-pooled contrast.

    Args:
        config: the settings.
        info: the clouds' description (:class:`~ssl_pointcloud.info.PointInfo`).
        teacher: a ready :class:`DenseTeacher` (tests); ``None``: ``config.teacher`` or the default teacher.

    Shapes:
        - batch: :meth:`ScenePretext.collate`'s dict
        - :meth:`embed`: ``(B, N, 3) -> (B, 2 * width)`` (the student's max- and mean-pooled point features)
    """

    def __init__(self, config: SLidRConfig, info: PointInfo, teacher: DenseTeacher | None = None) -> None:
        super().__init__()
        self.config, self.info = config, info
        self.backbone = PointwiseEncoder(config.backbone)
        if teacher is None:
            path = config.teacher or default_teacher(config.teacher_config, config.cache_dir)
            teacher = load_teacher(path)
        self.teacher = teacher
        self.point_head = nn.Linear(self.backbone.width, config.proj_dim)
        self.image_head = nn.Conv2d(teacher.dim, config.proj_dim, 1)

    def pretext(self) -> ScenePretext:
        return ScenePretext(self.config.rotate, self.config.scale)

    def forward(self, batch: dict[str, Any]) -> MethodOutput:
        points, images = batch["points"], batch["image"]
        b, n, _ = points.shape
        k = self.point_head(self.backbone.point_features(points)).reshape(b * n, -1)
        q = self.image_head(self.teacher(images))  # (B, D, H, W)
        q = q.permute(0, 2, 3, 1).reshape(-1, q.shape[1])
        psp = batch["point_superpixel"].reshape(-1)
        loss = region_contrastive(
            k, psp, q, batch["superpixels"].reshape(-1), int(batch["num_regions"]), self.config.temperature
        )
        return MethodOutput(loss, {"visible": (psp >= 0).float().mean().detach()})

    def backbone_spec(self) -> BackboneSpec:
        return BackboneSpec(
            name="pointwise",
            config=dataclasses.asdict(self.config.backbone),
            embed_dim=self.backbone.embed_dim,
            input=self.info.backbone_input(),
        )

"""Self-supervised registration pretraining (the idea of NICP: Marin, Corona, Pons-Moll, 2024, "NICP: Neural ICP
for 3D Human Registration at Scale"; losses in the style of DCP, Wang & Solomon, 2019, and RPM-Net, Yew & Lee,
2020): a point-feature network learns, without labels, to find the same surface point in two views of a shape.

Each training cloud gives two views (:class:`RegistrationViews`): view ``a``, a random subset of its points, and
view ``b``, another random subset (so the two share only some points: a re-sampling), mildly and smoothly deformed
(a random sum of sinusoids, a non-rigid motion), jittered, then moved by a random rigid transform (a uniform
rotation in SO(3) and a random translation). The correspondence is known: each point of ``a`` corresponds to its
nearest point of ``b`` before the deformation and the motion (pairs further apart than ``pos_radius`` are left
out).

The loss (:func:`registration_loss`):

- **correspondence InfoNCE**: the features of each point of ``a`` (L2-normalised, temperature ``temperature``)
  must pick its corresponding point among all points of ``b``;
- **transform**: soft correspondences (the softmax of the same similarities, averaged over ``b``'s coordinates),
  weighted by their confidence, give a rotation and translation by differentiable weighted Kabsch
  (:func:`ssl_pointcloud.registration.weighted_kabsch`); their squared error to the true motion
  (``|R - R*|_F^2 + |t - t*|^2``) is added with weight ``transform_weight``.

The backbone is :class:`ssl_pointcloud.models.invariant.InvariantPointEncoder`, fed only rotation-invariant inputs,
so a feature is the same at any rotation of the cloud: the random rotations then cost the network nothing and
the training is spent on what a rotation-invariant matcher must still learn (resampling, noise, deformation).
Test time (:func:`ssl_pointcloud.registration.register`): feature matches, RANSAC, ICP-style refinement.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ssl_core.errors import ConfigError
from ssl_core.kernels import knn
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_pointcloud.info import PointInfo
from ssl_pointcloud.models.invariant import BACKBONE_NAME, InvariantConfig, InvariantPointEncoder
from ssl_pointcloud.registration import weighted_kabsch
from ssl_pointcloud.transforms import random_rotation


@dataclass
class RegistrationConfig:
    """Registration pretraining settings (``--set method.<name>=<value>``).

    Args:
        backbone: the invariant point-feature network.
        num_points: points per view (256 of the cloud's 1,024, a random subset; ``register`` uses the same count).
        noise: std of the jitter added to view ``b`` (unit-sphere units).
        deform: amplitude of view ``b``'s smooth non-rigid deformation.
        max_translation: each translation coordinate is uniform in ``[-max_translation, max_translation]``.
        pos_radius: a point of ``a`` and its nearest point of ``b`` further apart than this are no pair.
        temperature: of the InfoNCE and the soft correspondences.
        transform_weight: weight of the Kabsch transform loss.
    """

    backbone: InvariantConfig = field(default_factory=InvariantConfig)
    num_points: int = 256
    noise: float = 0.005
    deform: float = 0.03
    max_translation: float = 0.5
    pos_radius: float = 0.05
    temperature: float = 0.07
    transform_weight: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.backbone, dict):
            self.backbone = InvariantConfig(**self.backbone)
        if self.num_points < self.backbone.k:
            raise ConfigError(f"num_points ({self.num_points}) must be at least backbone.k ({self.backbone.k})")
        if self.temperature <= 0 or self.pos_radius <= 0:
            raise ConfigError("temperature and pos_radius must be positive")


def smooth_deformation(points: torch.Tensor, amplitude: float, waves: int = 3) -> torch.Tensor:
    """``points + amplitude * sum_w a_w sin(k_w . x + phi_w) / sqrt(waves)``, random directions ``a_w``, wave
    vectors ``k_w`` of norm ~pi and phases (torch's global generator): a mild, smooth non-rigid motion.

    Shapes:
        - points: ``(N, 3)``; output ``(N, 3)``
    """
    if amplitude <= 0:
        return points
    a = F.normalize(torch.randn(waves, 3), dim=-1)
    k = math.pi * F.normalize(torch.randn(waves, 3), dim=-1) * (0.5 + torch.rand(waves, 1))
    phi = 2 * math.pi * torch.rand(waves)
    return points + amplitude * torch.sin(points @ k.T + phi) @ a / math.sqrt(waves)


@dataclass
class RegistrationViews:
    """The pretext: one cloud ``(N, 3)`` -> two views and their known correspondence and motion (module docstring).

    Output dict: ``a (M, 3)``, ``b (M, 3)``, ``pos (M,)`` int64 (index in ``b`` of each ``a`` point's partner),
    ``valid (M,)`` bool, ``R (3, 3)``, ``t (3,)`` with ``b ~ a @ R.T + t`` on the pairs.
    """

    num_points: int = 256
    noise: float = 0.005
    deform: float = 0.03
    max_translation: float = 0.5
    pos_radius: float = 0.05

    def __call__(self, sample: Any) -> dict[str, torch.Tensor]:
        x = torch.as_tensor(sample, dtype=torch.float32)
        if x.ndim != 2 or x.shape[-1] != 3:
            raise ValueError(f"a sample must be an (N, 3) cloud, got shape {tuple(x.shape)}")
        n = x.shape[0]
        m = min(self.num_points, n)
        a = x[torch.randperm(n)[:m]]
        b0 = x[torch.randperm(n)[:m]]
        d2, idx = knn(a[None], b0[None], 1)
        valid = d2[0, :, 0] <= self.pos_radius**2
        b = smooth_deformation(b0, self.deform) + self.noise * torch.randn_like(b0)
        r = random_rotation(1)[0]
        t = (2 * torch.rand(3) - 1) * self.max_translation
        return {"a": a, "b": b @ r.T + t, "pos": idx[0, :, 0], "valid": valid, "R": r, "t": t}


def registration_loss(
    fa: torch.Tensor,
    fb: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    pos: torch.Tensor,
    valid: torch.Tensor,
    r_true: torch.Tensor,
    t_true: torch.Tensor,
    temperature: float,
    transform_weight: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Correspondence InfoNCE + weighted-Kabsch transform loss (module docstring).

    Args:
        fa, fb: per-point features of the views (normalised here).
        a, b: the views' coordinates.
        pos: index in ``b`` of each point of ``a``'s partner; valid: which points of ``a`` have one.
        r_true, t_true: the motion with ``b ~ a @ R.T + t``.
        temperature: softmax temperature.
        transform_weight: weight of the transform term.

    Shapes:
        - fa ``(B, M, C)``, fb ``(B, M', C)``, a ``(B, M, 3)``, b ``(B, M', 3)``, pos/valid ``(B, M)``,
          r_true ``(B, 3, 3)``, t_true ``(B, 3)``
        - output: scalar loss, logs ``{"nce", "transform", "match_acc", "rot_err_deg"}``
    """
    fa, fb = F.normalize(fa, dim=-1), F.normalize(fb, dim=-1)
    logits = fa @ fb.transpose(1, 2) / temperature  # (B, M, M')
    v = valid.float()
    ce = F.cross_entropy(logits.flatten(0, 1), pos.flatten(), reduction="none").view_as(v)
    nce = (ce * v).sum() / v.sum().clamp_min(1)
    p = logits.softmax(dim=-1)
    soft = p @ b  # (B, M, 3)
    w = p.max(dim=-1).values
    r, t = weighted_kabsch(a, soft, w)
    transform = ((r - r_true).square().sum((1, 2)) + (t - t_true).square().sum(-1)).mean()
    with torch.no_grad():
        acc = ((logits.argmax(-1) == pos).float() * v).sum() / v.sum().clamp_min(1)
        cos = ((r.transpose(1, 2) @ r_true).diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2
        rot_err = torch.rad2deg(torch.arccos(cos.clamp(-1, 1))).mean()
    loss = nce + transform_weight * transform
    return loss, {"nce": nce.detach(), "transform": transform.detach(), "match_acc": acc, "rot_err_deg": rot_err}


class Registration(Method):
    """Registration pretraining: InfoNCE on known correspondences + weighted-Kabsch transform loss.

    Shapes:
        - batch: :class:`RegistrationViews`' dict, collated (``a``, ``b``: ``(B, M, 3)``, ...)
        - :meth:`embed`: ``(B, N, 3) -> (B, 2 * width)`` (max and mean pooled invariant point features of every
          ``N // num_points``-th point: a random subset at the density of the training views)
    """

    def __init__(self, config: RegistrationConfig | None = None, info: PointInfo | None = None) -> None:
        super().__init__()
        self.config = c = config or RegistrationConfig()
        self.info = info or PointInfo()
        # the global embedding reads the clouds at the density of the training views (InvariantConfig.embed_points)
        self.backbone = InvariantPointEncoder(
            c.backbone if c.backbone.embed_points else dataclasses.replace(c.backbone, embed_points=c.num_points)
        )

    def pretext(self) -> RegistrationViews:
        c = self.config
        return RegistrationViews(c.num_points, c.noise, c.deform, c.max_translation, c.pos_radius)

    def forward(self, batch: dict[str, torch.Tensor]) -> MethodOutput:
        a, b = batch["a"], batch["b"]
        if a.shape != b.shape:
            raise ValueError(f"views a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
        f = self.backbone.point_features(torch.cat([a, b]))  # one pass: BatchNorm sees both views
        fa, fb = f.chunk(2)
        loss, logs = registration_loss(
            fa, fb, a, b, batch["pos"], batch["valid"], batch["R"], batch["t"],
            self.config.temperature, self.config.transform_weight,
        )  # fmt: skip
        return MethodOutput(loss, logs)

    def backbone_spec(self) -> BackboneSpec:
        cfg = dataclasses.asdict(self.backbone.config)
        return BackboneSpec(BACKBONE_NAME, cfg, self.backbone.embed_dim, input=self.info.backbone_input())

"""PointContrast (Xie et al., 2020, "PointContrast: Unsupervised Pre-training for 3D Point Cloud Understanding"):
point-level contrastive learning between two views of one cloud whose point correspondences are known.

PointContrast pairs two overlapping scans of a scene, registered, and applies a random rigid transform to each;
its PointInfoNCE loss pulls the features of matched points together and pushes apart the features of the
other matched points. On single clouds we make the two views from one cloud (:class:`PairedViews`): two random
subsets of ``view_points`` points sharing a fraction ``overlap`` of them (so correspondences are partial, as
between two scans), each rotated by its own uniformly random rotation (about the origin, where the clouds are
centred), scaled and jittered. ``num_pairs`` of the shared points are drawn as matches. The point-wise encoder
(:class:`~ssl_pointcloud.models.pointwise.PointwiseEncoder`, fed raw xyz, so rotation-sensitive: it has to learn
from the augmentations which features should follow the surface) gives every point a feature, L2-normalised,
and PointInfoNCE (:func:`point_info_nce`, temperature 0.07) scores every match against the other matches of the
same cloud (``negatives="cloud"``, the harder choice on objects) or of the whole batch (``"batch"``, as in
PointContrast's code, where the sampled matches of all scene pairs in the batch are negatives of each other).
PointContrast uses no projection head; neither do we. The embedding of a cloud is the backbone's max and mean
pooled point features.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ssl_core.errors import ConfigError
from ssl_core.losses import info_nce
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_pointcloud.info import PointInfo
from ssl_pointcloud.models.pointwise import PointwiseConfig, PointwiseEncoder
from ssl_pointcloud.models.transformer import backbone_spec
from ssl_pointcloud.transforms import random_rotation

NEGATIVES = ("cloud", "batch")


@dataclass
class PointContrastConfig:
    """PointContrast settings (``--set method.<name>=<value>``).

    Args:
        backbone: the point-wise encoder (k = 16, edge convs 64-64-128, 128-d point features).
        view_points: points per view (512, half a cloud: the encoder's cost grows with it).
        overlap: share of each view's points that the other view also holds (0.6).
        num_pairs: matched points drawn per cloud (256; at most ``overlap * view_points``).
        temperature: PointInfoNCE's temperature (0.07, PointContrast's).
        negatives: ``"cloud"`` (the other matches of the same cloud) or ``"batch"`` (of every cloud).
        scale: range of the uniform random scale of each view (0.8 to 1.2).
        jitter: standard deviation of the Gaussian noise added to every point (0.01), clipped at 5 sigma.
    """

    backbone: PointwiseConfig = field(default_factory=PointwiseConfig)
    view_points: int = 512
    overlap: float = 0.6
    num_pairs: int = 256
    temperature: float = 0.07
    negatives: str = "cloud"
    scale: tuple[float, float] = (0.8, 1.2)
    jitter: float = 0.01

    def __post_init__(self) -> None:
        if isinstance(self.backbone, dict):
            self.backbone = PointwiseConfig(**self.backbone)
        self.scale = tuple(self.scale)
        if self.negatives not in NEGATIVES:
            raise ConfigError(f"negatives must be one of {NEGATIVES}, got {self.negatives!r}")
        if not 0.0 < self.overlap <= 1.0:
            raise ConfigError(f"overlap must lie in (0, 1], got {self.overlap}")
        shared = round(self.overlap * self.view_points)
        if not 1 <= self.num_pairs <= shared:
            raise ConfigError(
                f"num_pairs ({self.num_pairs}) must be between 1 and the shared points per view "
                f"(overlap * view_points = {shared}); lower method.num_pairs or raise method.overlap"
            )
        if self.temperature <= 0 or self.jitter < 0 or not 0 < self.scale[0] <= self.scale[1]:
            raise ConfigError(
                f"need temperature > 0, jitter >= 0, 0 < scale[0] <= scale[1]; got {self.temperature}, "
                f"{self.jitter}, {self.scale}"
            )


class PairedViews:
    """Per-sample pretext: two partially overlapping, independently rotated, scaled and jittered views of a
    cloud and ``num_pairs`` correspondences between them (see the module docstring). Randomness comes from torch's
    global generator.

    Shapes:
        - input: ``(N, 3)`` with ``N >= (2 - overlap) * view_points``
        - output: ``view1, view2 (V, 3)``; ``pairs (P, 2)`` int64, rows ``(i, j)``: point ``i`` of view 1 and
          point ``j`` of view 2 are the same point of the cloud; ``index1, index2 (V,)`` int64, the cloud's
          indices of the views' points
    """

    def __init__(self, config: PointContrastConfig) -> None:
        self.config = config

    def _transform(self, points: torch.Tensor) -> torch.Tensor:
        c = self.config
        scale = c.scale[0] + (c.scale[1] - c.scale[0]) * torch.rand(())
        out = scale * points @ random_rotation(1)[0].T
        if c.jitter > 0:
            out = out + (c.jitter * torch.randn_like(out)).clamp(-5 * c.jitter, 5 * c.jitter)
        return out

    def __call__(self, points: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.config
        points = torch.as_tensor(points, dtype=torch.float32)
        n, v = points.shape[0], c.view_points
        shared = round(c.overlap * v)
        if n < 2 * v - shared:
            raise ConfigError(
                f"two views of {v} points sharing {shared} need {2 * v - shared} points per cloud, got {n}; lower "
                "method.view_points or raise method.overlap / data.num_points"
            )
        perm = torch.randperm(n)
        own = v - shared
        members1 = torch.cat([perm[:shared], perm[shared : shared + own]])
        members2 = torch.cat([perm[:shared], perm[shared + own : shared + 2 * own]])
        order1, order2 = torch.randperm(v), torch.randperm(v)
        index1, index2 = members1[order1], members2[order2]
        # member i of view k sits at position argsort(order_k)[i]; members 0..shared-1 are the shared points
        pos1, pos2 = order1.argsort(), order2.argsort()
        chosen = torch.randperm(shared)[: c.num_pairs]
        pairs = torch.stack([pos1[chosen], pos2[chosen]], dim=1)
        return {
            "view1": self._transform(points[index1]),
            "view2": self._transform(points[index2]),
            "pairs": pairs,
            "index1": index1,
            "index2": index2,
        }


def point_info_nce(
    query: torch.Tensor, key: torch.Tensor, temperature: float = 0.07, negatives: str = "cloud"
) -> torch.Tensor:
    r"""PointInfoNCE (Xie et al., 2020, eq. 1) of matched point features.

    ``query[b, i]`` and ``key[b, i]`` are the features of the ``i``-th match of cloud ``b``; both are
    L2-normalised and

    .. math:: \ell_{b,i} = -\log \frac{\exp(q_{b,i} \cdot k_{b,i} / \tau)}{\sum_{j} \exp(q_{b,i} \cdot k_{b,j} / \tau)}

    with ``j`` over the matches of the same cloud (``negatives="cloud"``) or over every match of the batch,
    ``(c, j)`` for all clouds ``c`` (``"batch"``, :func:`ssl_core.losses.info_nce` on the flattened matches). The
    loss is the mean over all matches.

    Shapes:
        - query, key: ``(B, P, D)``
        - output: scalar
    """
    if query.shape != key.shape or query.ndim != 3:
        raise ValueError(f"query and key must both be (B, P, D), got {tuple(query.shape)} and {tuple(key.shape)}")
    if negatives not in NEGATIVES:
        raise ConfigError(f"negatives must be one of {NEGATIVES}, got {negatives!r}")
    if negatives == "batch":
        return info_nce(query.reshape(-1, query.shape[-1]), key.reshape(-1, key.shape[-1]), temperature=temperature)
    q, k = F.normalize(query, dim=-1), F.normalize(key, dim=-1)
    logits = q @ k.transpose(1, 2) / temperature  # (B, P, P)
    b, p, _ = logits.shape
    target = torch.arange(p, device=logits.device).expand(b, p)
    return F.cross_entropy(logits.reshape(b * p, p), target.reshape(-1))


class PointContrast(Method):
    """PointContrast on two views of each cloud (see the module docstring).

    Shapes:
        - batch: :class:`PairedViews` items, collated: ``view1, view2 (B, V, 3)``, ``pairs (B, P, 2)``
        - :meth:`embed`: ``(B, N, 3) -> (B, 2 * width)``
    """

    def __init__(self, config: PointContrastConfig, info: PointInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        self.backbone = PointwiseEncoder(config.backbone)

    def pretext(self) -> PairedViews:
        return PairedViews(self.config)

    def match_features(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Point features of the matched points of both views: ``(B, P, width)`` each (one backbone pass over
        both views, so that BatchNorm sees both)."""
        v1, v2, pairs = batch["view1"], batch["view2"], batch["pairs"]
        if v1.shape != v2.shape or pairs.ndim != 3 or pairs.shape[0] != v1.shape[0] or pairs.shape[2] != 2:
            raise ValueError(
                f"expected view1, view2 (B, V, 3) and pairs (B, P, 2), got {tuple(v1.shape)}, {tuple(v2.shape)}, "
                f"{tuple(pairs.shape)}"
            )
        f = self.backbone.point_features(torch.cat([v1, v2]))
        f1, f2 = f[: len(v1)], f[len(v1) :]
        rows = torch.arange(len(v1), device=f.device)[:, None]
        return f1[rows, pairs[..., 0]], f2[rows, pairs[..., 1]]

    def forward(self, batch: dict[str, torch.Tensor]) -> MethodOutput:
        q, k = self.match_features(batch)
        loss = point_info_nce(q, k, self.config.temperature, self.config.negatives)
        with torch.no_grad():
            pos_sim = F.cosine_similarity(q, k, dim=-1).mean()
        return MethodOutput(loss, {"pos_sim": pos_sim})

    def backbone_spec(self) -> BackboneSpec:
        return backbone_spec(self.backbone, self.info)

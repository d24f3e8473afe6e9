"""GeoMAE (Tian et al., 2023, "GeoMAE: Masked Geometric Target Prediction for Self-supervised Point Cloud
Pre-Training"): mask groups of points and predict the *geometry* of the masked parts -- centroid, surface normal,
curvature and occupancy -- rather than their coordinates.

GeoMAE works on voxels of LiDAR scenes: it masks voxels, encodes the visible ones with a transformer, and a light
decoder predicts, for every masked voxel, the centroid of its points, their normal and curvature, and its
occupancy. On single objects we keep Point-MAE's tokens instead of voxels (Pang et al., 2022): a cloud is cut into
``num_groups`` groups of ``group_size`` points around farthest-point-sampled centres
(:func:`~ssl_pointcloud.models.tokens.group_points`), 60% of the groups are masked
(:func:`~ssl_pointcloud.methods.common.random_group_mask`), the
:class:`~ssl_pointcloud.models.transformer.PointTransformer` encodes the visible groups only, and Point-MAE's
mask-token decoder (:class:`~ssl_pointcloud.methods.common.MaskedGroupDecoder`, with its own position MLP of the
centres) yields one vector per masked group, from which one linear head predicts the four targets of the group:

- **centroid**: the mean of the group's points minus its FPS centre, in units of the cloud's mean group radius
  (the mean over its groups of the largest point distance from the centre), so that the target is
  dimensionless; smooth-L1 loss (GeoMAE regresses the centroid of a voxel relative to the voxel).
- **normal**: the per-point normals (:func:`~ssl_pointcloud.geometry.normals_and_curvature`, ``k`` = 16
  neighbours in the whole cloud) summarised by their principal axis, the eigenvector of the largest
  eigenvalue of ``sum_i n_i n_i^T`` (a mean of unoriented normals that ignores their signs); loss
  ``1 - |cos|`` (sign-invariant).
- **curvature**: the mean surface variation of the group's points, times 3 (so that it lies in [0, 1]);
  L1 loss.
- **occupancy**: which cells of a ``4 x 4 x 4`` grid over the cube that holds the group contain points
  (:func:`~ssl_pointcloud.geometry.group_occupancy`); binary cross-entropy on logits. GeoMAE predicts the
  occupancy of masked voxels at a finer resolution; the grid of the group is its counterpart here.

The loss is the weighted sum of the four (weights in :class:`GeoMAEConfig`, all 1: each term is O(0.1-1) at
initialisation; the paper's weights for voxels do not carry over). The per-point normals and curvature are computed
in the pretext (data-loader workers, a kNN and 3x3 eigendecompositions per cloud); a plain ``(B, N, 3)``
batch also works and has them computed in ``forward``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.errors import ConfigError
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_pointcloud.geometry import normals_and_curvature
from ssl_pointcloud.info import PointInfo
from ssl_pointcloud.methods.common import MaskedGroupDecoder, random_group_mask, split_groups
from ssl_pointcloud.models.tokens import group_points
from ssl_pointcloud.models.transformer import PointTransformer, PointTransformerConfig, backbone_spec, position_mlp
from ssl_pointcloud.pretext.geometric import GeoMAEPretext, geomae_targets


@dataclass
class GeoMAEConfig:
    """GeoMAE settings (``--set method.<name>=<value>``).

    Args:
        backbone: the point transformer encoder (64 groups of 32 points, 192-d, 4 blocks).
        mask_ratio: share of masked groups (0.6, Point-MAE's; GeoMAE masks 70% of voxels on scenes).
        decoder_depth: decoder blocks (2; Point-MAE 4).
        decoder_heads: decoder attention heads (4).
        normal_k: neighbours of the per-point normal and curvature estimate (16).
        occupancy_resolution: cells per axis of each group's occupancy grid (4, i.e. 64 cells).
        centroid_weight, normal_weight, curvature_weight, occupancy_weight: loss weights (1 each).
    """

    backbone: PointTransformerConfig = field(default_factory=PointTransformerConfig)
    mask_ratio: float = 0.6
    decoder_depth: int = 2
    decoder_heads: int = 4
    normal_k: int = 16
    occupancy_resolution: int = 4
    centroid_weight: float = 1.0
    normal_weight: float = 1.0
    curvature_weight: float = 1.0
    occupancy_weight: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.backbone, dict):
            self.backbone = PointTransformerConfig(**self.backbone)
        if self.occupancy_resolution < 1 or self.normal_k < 3:
            raise ConfigError(
                f"occupancy_resolution must be >= 1 and normal_k >= 3, got {self.occupancy_resolution}, {self.normal_k}"
            )
        weights = (self.centroid_weight, self.normal_weight, self.curvature_weight, self.occupancy_weight)
        if min(weights) < 0 or sum(weights) == 0:
            raise ConfigError(f"loss weights must be >= 0 and not all 0, got {weights}")


def geomae_loss(
    pred: dict[str, torch.Tensor], target: dict[str, torch.Tensor], weights: dict[str, float]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The weighted sum of GeoMAE's four losses, each a mean over the masked groups.

    Args:
        pred: ``centroid (M, 3)``, ``normal (M, 3)`` (any length), ``curvature (M,)``, ``occupancy (M, R^3)``
            logits, for ``M`` groups.
        target: the same keys (:func:`geomae_targets` of those groups).
        weights: a weight per key.

    Returns:
        the total loss and the four unweighted terms (detached): smooth-L1 (beta 1) of the centroid averaged over
        its coordinates, ``1 - |cos|`` of the normal, L1 of the curvature, binary cross-entropy of the
        occupancy averaged over its cells.
    """
    terms = {
        "centroid": F.smooth_l1_loss(pred["centroid"], target["centroid"]),
        "normal": 1.0 - F.cosine_similarity(pred["normal"], target["normal"], dim=-1, eps=1e-8).abs().mean(),
        "curvature": F.l1_loss(pred["curvature"], target["curvature"]),
        "occupancy": F.binary_cross_entropy_with_logits(pred["occupancy"], target["occupancy"]),
    }
    total = sum(weights[k] * v for k, v in terms.items())
    return total, {k: v.detach() for k, v in terms.items()}


class GeoMAE(Method):
    """GeoMAE on point groups (see the module docstring).

    Shapes:
        - batch: ``{"points": (B, N, 3), "normals": (B, N, 3), "curvature": (B, N)}`` (:class:`GeoMAEPretext`,
          collated) or just the clouds ``(B, N, 3)``
        - :meth:`embed`: ``(B, N, 3) -> (B, 2 * width)`` (the encoder on every group, max and mean pooled)
    """

    def __init__(self, config: GeoMAEConfig, info: PointInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        c = config
        self.backbone = PointTransformer(c.backbone)
        width = self.backbone.width
        self.decoder_pos = position_mlp(width)
        self.decoder = MaskedGroupDecoder(width, c.decoder_depth, c.decoder_heads)
        self.n_occ = c.occupancy_resolution**3
        self.head = nn.Linear(width, 3 + 3 + 1 + self.n_occ)
        self.weights = {
            "centroid": c.centroid_weight,
            "normal": c.normal_weight,
            "curvature": c.curvature_weight,
            "occupancy": c.occupancy_weight,
        }
        # the decoder's position MLP keeps PyTorch's default init (not Point-MAE's std-0.02 one), so that the mask
        # tokens of different groups differ from the first step
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def pretext(self) -> GeoMAEPretext:
        return GeoMAEPretext(self.config.normal_k)

    def forward_encoder(self, neighbourhoods: torch.Tensor, centres: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Encode the visible groups only: ``(B, G, K, 3), (B, G, 3), (B, G) -> (B, V, width)``."""
        vis_groups, _ = split_groups(neighbourhoods, mask)
        vis_centres, _ = split_groups(centres, mask)
        return self.backbone.encode(*self.backbone.embed_groups(vis_groups, vis_centres))

    def predict(self, latent: torch.Tensor, centres: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Decode the masked groups: ``(B, V, width), (B, G, 3), (B, G) -> dict of (B, M, ...)`` predictions."""
        vis_centres, masked_centres = split_groups(centres, mask)
        out = self.head(self.decoder(latent, self.decoder_pos(vis_centres), self.decoder_pos(masked_centres)))
        return {
            "centroid": out[..., :3],
            "normal": out[..., 3:6],
            "curvature": out[..., 6],
            "occupancy": out[..., 7:],
        }

    def forward(self, batch: Any) -> MethodOutput:
        if isinstance(batch, dict):
            points, normals, curvature = batch["points"], batch["normals"], batch["curvature"]
        else:
            points = batch
            normals, curvature = normals_and_curvature(points, self.config.normal_k)
        b_cfg = self.config.backbone
        centres, neighbourhoods, idx = group_points(points, b_cfg.num_groups, b_cfg.group_size)
        clouds = torch.arange(points.shape[0], device=points.device)[:, None, None]
        target = geomae_targets(
            neighbourhoods.detach(), normals[clouds, idx], curvature[clouds, idx], self.config.occupancy_resolution
        )
        mask = random_group_mask(points.shape[0], b_cfg.num_groups, self.config.mask_ratio, device=points.device)
        pred = self.predict(self.forward_encoder(neighbourhoods, centres, mask), centres, mask)
        masked_target = {k: split_groups(v, mask)[1] for k, v in target.items()}
        loss, terms = geomae_loss(pred, masked_target, self.weights)
        return MethodOutput(loss, terms)

    def backbone_spec(self) -> BackboneSpec:
        return backbone_spec(self.backbone, self.info)

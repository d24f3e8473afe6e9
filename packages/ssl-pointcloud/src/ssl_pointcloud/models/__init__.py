"""Point-cloud backbones: FPS + kNN grouping with a mini-PointNet token embedding, Point-MAE's transformer
encoder, a small DGCNN-style point-wise encoder for dense tasks, and a rotation-invariant point-wise encoder
(registration)."""

from ssl_pointcloud.models.invariant import InvariantConfig, InvariantPointEncoder, build_invariant_pointwise
from ssl_pointcloud.models.pointwise import PointwiseConfig, PointwiseEncoder, build_pointwise
from ssl_pointcloud.models.tokens import MiniPointNet, group_points
from ssl_pointcloud.models.transformer import PointTransformer, PointTransformerConfig, build_point_transformer

__all__ = [
    "InvariantConfig",
    "InvariantPointEncoder",
    "build_invariant_pointwise",
    "MiniPointNet",
    "PointTransformer",
    "PointTransformerConfig",
    "PointwiseConfig",
    "PointwiseEncoder",
    "build_point_transformer",
    "build_pointwise",
    "group_points",
]

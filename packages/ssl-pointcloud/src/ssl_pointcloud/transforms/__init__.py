"""Random augmentations of point clouds for the methods' pretexts (batched torch: rotations, scaling, translation,
jitter, dropout, resampling, partial-view crops) and two views of one cloud with their point correspondence."""

from ssl_pointcloud.transforms.augment import (
    crop,
    dropout,
    jitter,
    normalize,
    quaternion_to_matrix,
    random_rotation,
    random_rotation_z,
    resample,
    resample_indices,
    rotate,
    scale,
    translate,
)
from ssl_pointcloud.transforms.views import (
    PairedViews,
    apply_transform,
    correspondences,
    paired_views,
    random_similarity,
)

__all__ = [
    "PairedViews",
    "apply_transform",
    "correspondences",
    "crop",
    "dropout",
    "jitter",
    "normalize",
    "paired_views",
    "quaternion_to_matrix",
    "random_rotation",
    "random_rotation_z",
    "random_similarity",
    "resample",
    "resample_indices",
    "rotate",
    "scale",
    "translate",
]

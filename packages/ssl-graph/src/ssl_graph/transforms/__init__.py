"""Graph augmentations as PyG transforms."""

from ssl_graph.transforms.augment import (
    AugmentConfig,
    DropEdges,
    DropNodes,
    GraphViews,
    Identity,
    MaskFeatures,
    RandomChoice,
    SubgraphSample,
    build_augment,
    grace_view,
)

__all__ = [
    "AugmentConfig",
    "DropEdges",
    "DropNodes",
    "GraphViews",
    "Identity",
    "MaskFeatures",
    "RandomChoice",
    "SubgraphSample",
    "build_augment",
    "grace_view",
]

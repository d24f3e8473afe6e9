"""Graph augmentations as PyG transforms."""

from ssl_graph.transforms.augment import (
    AugmentConfig,
    DropEdges,
    DropNodes,
    GraphViews,
    MaskFeatures,
    RandomChoice,
    SubgraphSample,
    build_augment,
)

__all__ = [
    "AugmentConfig",
    "DropEdges",
    "DropNodes",
    "GraphViews",
    "MaskFeatures",
    "RandomChoice",
    "SubgraphSample",
    "build_augment",
]

"""Probes beyond the core's image-level kNN and linear ones: the per-pixel linear segmentation probe of the scenes
(the ``seg_miou`` column)."""

from ssl_vision.probes.segmentation import (
    SceneSegmentationProbe,
    dense_features,
    linear_segmentation_miou,
    mean_iou,
    scene_segmentation_probe,
)

__all__ = [
    "SceneSegmentationProbe",
    "dense_features",
    "linear_segmentation_miou",
    "mean_iou",
    "scene_segmentation_probe",
]

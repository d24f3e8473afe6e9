"""Image data: Fashion-MNIST (embedded default), scikit-learn digits, IDX and .npy arrays, image folders, and
generated scenes of objects (:mod:`ssl_vision.data.scenes`)."""

from ssl_vision.data.arrays import load_npy_folder, read_npy_images
from ssl_vision.data.idx import load_idx_folder, read_idx
from ssl_vision.data.images import DATASETS, ImageInfo, VisionDataConfig, load_data
from ssl_vision.data.scenes import SceneConfig, load_scenes, render_scene, scene_objects, segmentation_split

__all__ = [
    "DATASETS",
    "ImageInfo",
    "SceneConfig",
    "VisionDataConfig",
    "load_data",
    "load_idx_folder",
    "load_npy_folder",
    "load_scenes",
    "read_idx",
    "read_npy_images",
    "render_scene",
    "scene_objects",
    "segmentation_split",
]

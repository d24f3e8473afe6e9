"""Image data: Fashion-MNIST (embedded default), scikit-learn digits, IDX and .npy arrays, image folders."""

from ssl_vision.data.arrays import load_npy_folder, read_npy_images
from ssl_vision.data.idx import load_idx_folder, read_idx
from ssl_vision.data.images import DATASETS, ImageInfo, VisionDataConfig, load_data

__all__ = [
    "DATASETS",
    "ImageInfo",
    "VisionDataConfig",
    "load_data",
    "load_idx_folder",
    "load_npy_folder",
    "read_idx",
    "read_npy_images",
]

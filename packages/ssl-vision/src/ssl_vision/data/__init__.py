"""Image data: Fashion-MNIST (embedded default), scikit-learn digits, IDX folders and image folders."""

from ssl_vision.data.idx import load_idx_folder, read_idx
from ssl_vision.data.images import DATASETS, ImageInfo, VisionDataConfig, load_data

__all__ = ["DATASETS", "ImageInfo", "VisionDataConfig", "load_data", "load_idx_folder", "read_idx"]

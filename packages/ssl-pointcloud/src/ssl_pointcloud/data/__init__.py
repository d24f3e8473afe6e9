"""Point-cloud data: generated shapes (deformed open3d primitives, ray-cast partial views; the default), the CGAL
demo meshes, user folders of clouds / meshes / arrays, and the probe columns (linear SVM, few-shot)."""

from ssl_pointcloud.data.config import DATASETS, PointDataConfig, cache_root
from ssl_pointcloud.data.files import CLOUD_EXTENSIONS, UnreadableCloud, load_cloud
from ssl_pointcloud.data.folder import CloudFolder, load_cgal, load_folder
from ssl_pointcloud.data.load import PointProbes, load_data, svm_accuracy
from ssl_pointcloud.data.shapes import SHAPES, generate_shapes, load_shapes, random_mesh, scan

__all__ = [
    "CLOUD_EXTENSIONS",
    "DATASETS",
    "SHAPES",
    "CloudFolder",
    "PointDataConfig",
    "PointProbes",
    "UnreadableCloud",
    "cache_root",
    "generate_shapes",
    "load_cgal",
    "load_cloud",
    "load_data",
    "load_folder",
    "load_shapes",
    "random_mesh",
    "scan",
    "svm_accuracy",
]

"""selfsup for pointcloud. No method is registered yet (see README.md)."""

__version__ = "0.1.0"

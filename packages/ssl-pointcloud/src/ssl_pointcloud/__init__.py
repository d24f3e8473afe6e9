"""selfsup for point clouds on open3d: Point-MAE, GeoMAE, PointContrast, SLidR and self-supervised registration
(``selfsup list`` shows them; see README.md)."""

__version__ = "0.1.0"

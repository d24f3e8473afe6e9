"""What a model needs to know about the point clouds it is given."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PointInfo:
    """The shape of the clouds a data set yields: every sample is a ``float32`` tensor ``(num_points, 3)`` of
    xyz coordinates, centred on its mean and scaled into the unit sphere (the farthest point at distance 1).

    Args:
        num_points: points per cloud (1,024, Point-MAE's ModelNet setting).
    """

    num_points: int = 1024

    def backbone_input(self, **extra: object) -> dict:
        """The ``input`` entry of a point-cloud backbone's :class:`~ssl_core.method.BackboneSpec` (plus
        ``extra`` keys), written into every export for its users."""
        return {"num_points": self.num_points, "layout": "points (B, N, 3) float32, centred, unit sphere", **extra}

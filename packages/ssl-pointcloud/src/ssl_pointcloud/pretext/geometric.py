"""GeoMAE's geometric targets (Tian et al., 2023): per-point normals and surface variation computed per cloud in
the pretext, and each point group's centroid, normal, curvature and occupancy (the module docstring of
:mod:`ssl_pointcloud.methods.geomae` defines them)."""

from __future__ import annotations

import torch

from ssl_pointcloud.geometry import group_occupancy, normals_and_curvature


class GeoMAEPretext:
    """Per-sample pretext: the cloud with its per-point normals and surface variation (no randomness).

    Shapes:
        - input: ``(N, 3)``
        - output: ``{"points": (N, 3), "normals": (N, 3), "curvature": (N,)}``
    """

    def __init__(self, k: int = 16) -> None:
        self.k = k

    def __call__(self, points: torch.Tensor) -> dict[str, torch.Tensor]:
        points = torch.as_tensor(points, dtype=torch.float32)
        normals, curvature = normals_and_curvature(points, self.k)
        return {"points": points, "normals": normals, "curvature": curvature}


@torch.no_grad()
def geomae_targets(
    neighbourhoods: torch.Tensor, normals: torch.Tensor, curvature: torch.Tensor, resolution: int = 4
) -> dict[str, torch.Tensor]:
    """GeoMAE's four targets of every group (see :mod:`ssl_pointcloud.methods.geomae`).

    Args:
        neighbourhoods: each group's points relative to its centre.
        normals: the unit normals of those points (any signs).
        curvature: their surface variation.
        resolution: cells per axis of the occupancy grid.

    Shapes:
        - neighbourhoods, normals: ``(B, G, K, 3)``; curvature: ``(B, G, K)``
        - output: ``centroid (B, G, 3)``, ``normal (B, G, 3)`` (unit), ``curvature (B, G)``,
          ``occupancy (B, G, R^3)``
    """
    radius = neighbourhoods.norm(dim=-1).amax(dim=-1).mean(dim=-1).clamp(min=1e-8)  # (B,) mean group radius
    centroid = neighbourhoods.mean(dim=2) / radius[:, None, None]
    n = normals.double()
    scatter = n.transpose(-1, -2) @ n  # (B, G, 3, 3), sum_i n_i n_i^T
    normal = torch.linalg.eigh(scatter)[1][..., :, -1].to(normals.dtype)  # principal axis
    return {
        "centroid": centroid,
        "normal": normal,
        "curvature": 3.0 * curvature.mean(dim=-1),
        "occupancy": group_occupancy(neighbourhoods, resolution),
    }

"""Local surface geometry of point clouds: normals and surface variation from the covariance of each point's
k nearest neighbours (Hoppe et al., 1992; Pauly et al., 2002), and the occupancy grid of a point group
(GeoMAE's targets; Tian et al., 2023).

Everything here computes *targets*: the functions run under ``torch.no_grad()`` and return tensors without
gradient (the eigenvectors of nearly repeated eigenvalues have unbounded derivatives, so a gradient through
them would be meaningless on planes and lines).
"""

from __future__ import annotations

import torch

from ssl_core.errors import ConfigError
from ssl_core.kernels import knn

ORIENTATIONS = ("centroid", "none")


def _check_points(points: torch.Tensor, name: str = "points") -> None:
    if points.ndim < 2 or points.shape[-1] != 3:
        raise ValueError(f"{name} must be (..., N, 3) point clouds, got shape {tuple(points.shape)}")
    if not points.is_floating_point():
        raise ValueError(f"{name} must hold floating-point coordinates, got {points.dtype}")
    if not torch.isfinite(points).all():
        raise ValueError(
            f"{name} holds NaN or infinite coordinates: drop or fix those points before estimating normals "
            "(e.g. points[torch.isfinite(points).all(-1)])"
        )


@torch.no_grad()
def local_covariance(points: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Covariance of every point's ``k`` nearest neighbours (the point itself included), in float64.

    The covariance is the population one, ``1/k * sum_j (p_j - mean)(p_j - mean)^T`` (``np.cov`` divides by
    ``k - 1``: the same eigenvectors and eigenvalue ratios).

    Args:
        points: clouds, any leading dims.
        k: neighbours per point (``3 <= k <= N``).

    Shapes:
        - points: ``(..., N, 3)``
        - output: covariances ``(..., N, 3, 3)`` float64 and neighbour indices ``(..., N, k)`` int64
    """
    _check_points(points)
    n = points.shape[-2]
    if not 3 <= k <= n:
        raise ConfigError(
            f"normal estimation needs 3 <= k <= N (points per cloud, here {n}); got k={k}: a plane through a "
            "point needs at least 3 neighbours"
        )
    lead = points.shape[:-2]
    flat = points.reshape(-1, n, 3)
    _, idx = knn(flat, flat, k)  # (B, N, k); the point itself first (distance 0)
    x = flat.double()
    neighbours = x[torch.arange(flat.shape[0], device=x.device)[:, None, None], idx]  # (B, N, k, 3)
    centred = neighbours - neighbours.mean(dim=2, keepdim=True)
    cov = centred.transpose(-1, -2) @ centred / k  # (B, N, 3, 3)
    return cov.reshape(*lead, n, 3, 3), idx.reshape(*lead, n, k)


@torch.no_grad()
def normals_and_curvature(
    points: torch.Tensor, k: int = 16, orient: str = "centroid", eps: float = 1e-12
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Unit normals and surface variation of every point from its ``k`` nearest neighbours.

    The normal is the eigenvector of the smallest eigenvalue of the neighbourhood covariance
    (:func:`local_covariance`, via ``torch.linalg.eigh`` in float64), the curvature Pauly et al.'s (2002)
    surface variation :math:`\sigma = \lambda_0 / (\lambda_0 + \lambda_1 + \lambda_2)` with
    :math:`\lambda_0 \le \lambda_1 \le \lambda_2`, which lies in ``[0, 1/3]``: 0 on a plane, 1/3 for an isotropic
    blob. On a sphere sampled uniformly with ``N`` points it is about ``k / (6 N)`` (the neighbourhood is a
    cap of area ``k / N`` of the sphere's; a value independent of the radius).

    Sign: a covariance defines a normal only up to sign. With ``orient="centroid"`` (the default) every
    normal is flipped to point away from its cloud's centroid (``n . (p - mean(p)) >= 0``), right on
    star-shaped closed surfaces seen from their centre (spheres, boxes, most of our shapes) and arbitrary
    but deterministic elsewhere (planes through the centroid, concave parts); ``orient="none"`` keeps
    ``eigh``'s sign. Losses on these normals should be sign-invariant (``1 - |cos|``).

    Degenerate neighbourhoods: duplicate points (all ``k`` neighbours at one place) have zero covariance;
    their curvature is set to 0 and their normal is ``eigh``'s first eigenvector of the zero matrix (a
    coordinate axis). Collinear neighbours have two zero eigenvalues: the curvature is 0 and the normal
    is some unit vector perpendicular to the line (which one is unspecified). Rounding can make the smallest
    eigenvalue slightly negative; it is clamped to 0. Non-finite coordinates raise a ``ValueError``.

    Args:
        points: clouds, any leading dims (each ``(N, 3)`` cloud is handled on its own).
        k: neighbours per point, the point itself included (16).
        orient: ``"centroid"`` or ``"none"`` (see above).
        eps: a neighbourhood whose eigenvalue sum is at most ``eps`` times the cloud's squared extent counts
            as a single point (curvature 0).

    Shapes:
        - points: ``(..., N, 3)``
        - output: normals ``(..., N, 3)`` (unit length) and curvature ``(..., N)``, both in ``points.dtype``
    """
    if orient not in ORIENTATIONS:
        raise ConfigError(f"orient must be one of {ORIENTATIONS}, got {orient!r}")
    cov, _ = local_covariance(points, k)
    evals, evecs = torch.linalg.eigh(cov)  # ascending eigenvalues
    normals = evecs[..., :, 0]  # eigenvector of the smallest eigenvalue: column 0
    evals = evals.clamp(min=0.0)
    total = evals.sum(dim=-1)
    x = points.double()
    centred = x - x.mean(dim=-2, keepdim=True)
    extent = centred.square().sum(-1).amax(dim=-1, keepdim=True).clamp(min=1e-30)  # (..., 1)
    single = total <= eps * extent
    curvature = torch.where(single, torch.zeros_like(total), evals[..., 0] / total.clamp(min=1e-300))
    if orient == "centroid":
        flip = (normals * centred).sum(-1) < 0
        normals = torch.where(flip[..., None], -normals, normals)
    return normals.to(points.dtype), curvature.to(points.dtype)


@torch.no_grad()
def group_occupancy(neighbourhoods: torch.Tensor, resolution: int = 4) -> torch.Tensor:
    """Occupancy of a ``resolution``^3 voxel grid by each group's points (GeoMAE's occupancy target, per group).

    Each group is scaled by its own half-extent ``h = max |coordinate|`` (so the grid is the cube
    ``[-h, h]^3`` around the group's centre that just holds the group; groups of one point fill the centre
    voxel), and a voxel is 1 when at least one point falls in it (points on the upper faces fall in the last
    voxel). Voxels are ordered x-major: index ``(ix * R + iy) * R + iz``.

    Args:
        neighbourhoods: point groups relative to their centres
            (:func:`~ssl_pointcloud.models.tokens.group_points`), any leading dims.
        resolution: voxels per axis ``R`` (>= 1).

    Shapes:
        - neighbourhoods: ``(..., K, 3)``
        - output: ``(..., R^3)`` float, 0 or 1
    """
    _check_points(neighbourhoods, "neighbourhoods")
    if resolution < 1:
        raise ConfigError(f"occupancy resolution must be >= 1, got {resolution}")
    r = resolution
    half = neighbourhoods.abs().amax(dim=(-1, -2), keepdim=True).clamp(min=1e-12)  # (..., 1, 1)
    cells = ((neighbourhoods / half + 1.0) * (r / 2)).floor().long().clamp(0, r - 1)  # (..., K, 3)
    flat = (cells[..., 0] * r + cells[..., 1]) * r + cells[..., 2]  # (..., K)
    occ = torch.zeros(*flat.shape[:-1], r**3, dtype=neighbourhoods.dtype, device=neighbourhoods.device)
    return occ.scatter_(-1, flat, 1.0)

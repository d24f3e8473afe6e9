"""Point-cloud operators without a CUDA build step: sampling, neighbourhoods and the Chamfer distance.

Each runs a Triton kernel on CUDA and a CPU / any-device path elsewhere, chosen by
:func:`ssl_core.kernels.dispatch.select`; none holds a full B x M x N distance matrix.
"""

from __future__ import annotations

import torch

from ssl_core.errors import ConfigError
from ssl_core.kernels.ball_query.reference import ball_query_chunked
from ssl_core.kernels.dispatch import select
from ssl_core.kernels.fps.reference import fps_numpy, fps_torch
from ssl_core.kernels.knn.reference import knn_chunked, knn_kdtree


def _check_cloud(name: str, x: torch.Tensor) -> None:
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"{name} must be (B, N, 3) point clouds, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must hold floating-point coordinates, got {x.dtype}")


def _check_pair(query: torch.Tensor, points: torch.Tensor) -> None:
    _check_cloud("query", query)
    _check_cloud("points", points)
    if query.shape[0] != points.shape[0] or query.device != points.device or query.dtype != points.dtype:
        raise ValueError(
            f"query and points must share batch size, device and dtype, got {tuple(query.shape)} on "
            f"{query.device} ({query.dtype}) and {tuple(points.shape)} on {points.device} ({points.dtype})"
        )
    if points.shape[1] == 0:
        raise ValueError("points is empty: every cloud needs at least one point")


def farthest_point_sampling(points: torch.Tensor, n_samples: int, start: int = 0, impl: str = "auto") -> torch.Tensor:
    """Indices of ``n_samples`` points chosen by farthest point sampling, in selection order.

    Greedy FPS as in PointNet++ (Qi et al., 2017; Eldar et al., 1997): from ``start``, repeatedly take the
    point farthest from all samples chosen so far (the lowest index on ties). The selected set equals
    open3d's ``farthest_point_down_sample`` from the same start index (which returns points, in index order).

    Args:
        points: point clouds.
        n_samples: samples per cloud, ``1 <= n_samples <= N``.
        start: index of the first sample in every cloud.
        impl: ``"auto"``, ``"triton"``, ``"numpy"`` or ``"torch"``.

    Shapes:
        - points: ``(B, N, 3)``
        - output: ``(B, n_samples)``, int64
    """
    _check_cloud("points", points)
    n = points.shape[1]
    if not 1 <= n_samples <= n:
        raise ConfigError(f"n_samples must be between 1 and the number of points {n}, got {n_samples}")
    if not 0 <= start < n:
        raise ConfigError(f"start must be a point index in [0, {n}), got {start}")
    choice = select("fps", points.device, points.dtype, points.shape[0] * n, impl)
    if choice.name == "numpy":
        return fps_numpy(points, n_samples, start)
    if choice.name == "torch":
        return fps_torch(points, n_samples, start)
    from ssl_core.kernels.fps.triton import fps_triton

    return fps_triton(points, n_samples, start)


def _sorted_neighbours(query: torch.Tensor, points: torch.Tensor, idx: torch.Tensor):
    """Squared distances to ``idx`` (differentiable) and both sorted by (distance, index)."""
    dtype = torch.promote_types(query.dtype, torch.float32)
    clouds = torch.arange(points.shape[0], device=points.device)[:, None, None]
    # advanced indexing, whose backward scatters into (B, N, 3); gather on an expanded (B, M, N, 3) view
    # would allocate that whole tensor for its gradient
    neighbours = points.to(dtype)[clouds, idx]  # (B, M, k, 3)
    dist = (query.to(dtype)[:, :, None] - neighbours).square().sum(-1)  # (B, M, k)
    # one sort on (distance, index): the bits of a non-negative float32 order like its value
    key = (dist.detach().float().view(torch.int32).to(torch.int64) << 32) | idx
    order = key.sort(dim=2).indices
    return dist.gather(2, order), idx.gather(2, order)


def knn(query: torch.Tensor, points: torch.Tensor, k: int, impl: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest points of every query point, nearest first.

    Exact brute-force / KD-tree k-nearest-neighbour search (as PointNet++'s grouping and Point-MAE's patch
    building use it; Qi et al., 2017; Pang et al., 2022). Ties are ordered by index; which of several
    points tied at the k-th distance is kept is unspecified (float64 distances are compared in float32).

    Args:
        query: query points.
        points: points searched, one cloud per query cloud.
        k: neighbours per query, ``1 <= k <= N``.
        impl: ``"auto"``, ``"triton"``, ``"kdtree"`` or ``"chunked"``.

    Shapes:
        - query: ``(B, M, 3)``; points: ``(B, N, 3)``
        - output: squared distances ``(B, M, k)`` (differentiable in query and points) and indices
          ``(B, M, k)`` int64 into ``points``
    """
    _check_pair(query, points)
    if not 1 <= k <= points.shape[1]:
        raise ConfigError(f"k must be between 1 and the number of points {points.shape[1]}, got {k}")
    choice = select("knn", query.device, query.dtype, query.shape[0] * query.shape[1] * points.shape[1], impl)
    if choice.name == "kdtree":
        idx = knn_kdtree(query, points, k)
    elif choice.name == "chunked":
        idx = knn_chunked(query, points, k)
    else:
        from ssl_core.kernels.knn.triton import knn_triton

        idx = knn_triton(query, points, k)
    return _sorted_neighbours(query, points, idx)


def ball_query(
    query: torch.Tensor, points: torch.Tensor, radius: float, k: int, impl: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``k`` points (in index order) strictly within ``radius`` of every query point.

    PointNet++'s ball query (Qi et al., 2017), with its padding: when fewer than ``k`` points lie in the
    ball, the remaining slots repeat the first one, and an empty ball gives index 0 everywhere; ``counts``
    tells how many slots are real.

    Args:
        query: ball centres.
        points: points searched, one cloud per query cloud.
        radius: ball radius (> 0).
        k: slots per query (>= 1).
        impl: ``"auto"``, ``"triton"`` or ``"chunked"``.

    Shapes:
        - query: ``(B, M, 3)``; points: ``(B, N, 3)``
        - output: indices ``(B, M, k)`` int64 and counts ``(B, M)`` int64 (at most ``k``)
    """
    _check_pair(query, points)
    if radius <= 0 or k < 1:
        raise ConfigError(f"ball_query needs radius > 0 and k >= 1, got radius={radius}, k={k}")
    choice = select("ball_query", query.device, query.dtype, query.shape[1] * points.shape[1], impl)
    if choice.name == "chunked":
        return ball_query_chunked(query, points, radius, k)
    from ssl_core.kernels.ball_query.triton import ball_query_triton

    return ball_query_triton(query, points, radius, k)


def chamfer_distance(x: torch.Tensor, y: torch.Tensor, impl: str = "auto") -> torch.Tensor:
    r"""Chamfer distance between two point clouds, per cloud, differentiable in both.

    .. math::
        d(X, Y) = \frac{1}{|X|}\sum_{x \in X} \min_{y \in Y} \|x - y\|^2
                + \frac{1}{|Y|}\sum_{y \in Y} \min_{x \in X} \|x - y\|^2

    (Fan et al., 2017; the L2 form Point-MAE reconstructs with: ``chamfer_distance(x, y).mean()``.) The
    nearest neighbours come from :func:`knn` with ``k = 1`` (``impl`` as there); the gradient flows through
    the recomputed distances to those neighbours, so memory stays O(B (N + M)).

    Args:
        x: first clouds.
        y: second clouds.
        impl: implementation of the nearest-neighbour search.

    Shapes:
        - x: ``(B, N, 3)``; y: ``(B, M, 3)``
        - output: ``(B,)``
    """
    _check_pair(x, y)
    if x.shape[1] == 0:
        raise ValueError("x is empty: every cloud needs at least one point")
    x_to_y, _ = knn(x, y, 1, impl)
    y_to_x, _ = knn(y, x, 1, impl)
    return x_to_y.squeeze(2).mean(1) + y_to_x.squeeze(2).mean(1)

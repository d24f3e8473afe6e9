"""Hand-crafted global shape descriptors: the baseline rows of the point-cloud probes.

- :func:`d2_histogram`: the D2 shape distribution of Osada et al. (2002), "Shape Distributions": the histogram
  of the distances between random pairs of points. It is the ``raw_input`` row of the probe table (a raw
  cloud's coordinates, flattened, mean nothing to a kNN: the points are unordered).
- :func:`fpfh_pooled`: Fast Point Feature Histograms (Rusu et al., 2009), open3d's
  ``pipelines.registration.compute_fpfh_feature`` on normals estimated by open3d, mean- and max-pooled over the
  points: the ``fpfh`` baseline row.

Both are invariant to rotations and translations of the cloud (FPFH up to open3d's normal estimation).
"""

from __future__ import annotations

import functools
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ssl_core.errors import ConfigError

D2_RANGE = 2.0  # the largest distance between two points of the unit sphere
FPFH_DIM = 33


def _check_points(points: torch.Tensor | np.ndarray) -> torch.Tensor:
    points = torch.as_tensor(points)
    if points.ndim != 3 or points.shape[2] != 3:
        raise ValueError(f"points must be (B, N, 3) point clouds, got shape {tuple(points.shape)}")
    if points.shape[1] < 2:
        raise ValueError(f"every cloud needs at least 2 points, got {points.shape[1]}")
    return points


def d2_pairs(num_points: int, pairs: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The point pairs of :func:`d2_histogram`: ``pairs`` pairs ``(i, j)`` of distinct indices below
    ``num_points``, drawn uniformly from one generator seeded with ``seed`` (the same pairs for every cloud: the
    points of a cloud are unordered, so fixed index pairs are random pairs of each cloud).

    Shapes:
        - output: two ``(pairs,)`` int64 tensors
    """
    if num_points < 2 or pairs < 1:
        raise ConfigError(f"D2 needs at least 2 points and 1 pair, got {num_points} points and {pairs} pairs")
    g = torch.Generator().manual_seed(seed)
    i = torch.randint(0, num_points, (pairs,), generator=g)
    j = (i + torch.randint(1, num_points, (pairs,), generator=g)) % num_points  # j != i
    return i, j


def d2_histogram(
    points: torch.Tensor, bins: int = 64, pairs: int = 8192, seed: int = 0, max_distance: float = D2_RANGE
) -> torch.Tensor:
    """The D2 shape distribution (Osada et al., 2002): for each cloud, the histogram of the Euclidean distances
    between ``pairs`` random pairs of its points (:func:`d2_pairs`), ``bins`` equal bins over
    ``[0, max_distance]`` (2: the diameter of the unit sphere the clouds are scaled into; a larger distance falls
    in the last bin), normalised to sum to 1. Deterministic: the pairs depend only on ``N``, ``pairs`` and
    ``seed``. This is the ``raw_input`` baseline of the probes.

    Args:
        points: point clouds (a tensor or an array).
        bins: histogram bins.
        pairs: point pairs per cloud.
        seed: seeds the pairs.
        max_distance: upper end of the histogram.

    Shapes:
        - points: ``(B, N, 3)``; output: ``(B, bins)`` float32
    """
    points = _check_points(points).float()
    if bins < 1 or not max_distance > 0:
        raise ConfigError(f"d2_histogram needs bins >= 1 and max_distance > 0, got {bins}, {max_distance}")
    i, j = d2_pairs(points.shape[1], pairs, seed)
    i, j = i.to(points.device), j.to(points.device)
    dist = (points[:, i] - points[:, j]).norm(dim=-1)  # (B, pairs)
    index = (dist / max_distance * bins).long().clamp_(0, bins - 1)
    hist = torch.zeros(points.shape[0], bins, device=points.device).scatter_add_(1, index, torch.ones_like(dist))
    return (hist / pairs).cpu()


def _fpfh_one(cloud: np.ndarray, normal_radius: float, radius: float, max_nn: int) -> np.ndarray:
    """The ``(N, 33)`` FPFH features of one cloud (normals estimated by open3d, oriented away from the mean)."""
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(cloud.astype(np.float64)))
    pcd.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=normal_radius, max_nn=max_nn))
    normals = np.asarray(pcd.normals)
    outward = ((cloud - cloud.mean(0)) * normals).sum(1) < 0
    normals[outward] *= -1
    pcd.normals = o3d.utility.Vector3dVector(normals)
    fpfh = o3d.pipelines.registration.compute_fpfh_feature(
        pcd, o3d.geometry.KDTreeSearchParamHybrid(radius=radius, max_nn=max_nn)
    )
    return np.asarray(fpfh.data).T


def fpfh_pooled(
    points: torch.Tensor, radius: float = 0.25, normal_radius: float = 0.1, max_nn: int = 32, workers: int = 0
) -> torch.Tensor:
    """FPFH (Rusu et al., 2009) of every point, mean- and max-pooled over the cloud: the ``fpfh`` baseline.

    Per cloud: normals estimated by open3d (``estimate_normals`` with a hybrid search of ``normal_radius`` and
    ``max_nn`` neighbours), flipped to point away from the cloud's mean (open3d leaves their sign arbitrary), then
    ``open3d.pipelines.registration.compute_fpfh_feature`` with a hybrid search of ``radius`` and ``max_nn``;
    the 33 histogram values of every point are averaged and maxed over the points. Radii are in the units of
    the clouds (the unit sphere).

    Args:
        points: point clouds (a tensor or an array).
        radius: neighbourhood of the FPFH features.
        normal_radius: neighbourhood of the normals.
        max_nn: most neighbours of either search.
        workers: clouds computed in parallel threads (open3d releases the GIL; 0: one per CPU core); the result
            does not depend on it.

    Shapes:
        - points: ``(B, N, 3)``; output: ``(B, 66)`` float32: the 33 means, then the 33 maxima
    """
    pts = _check_points(points).detach().cpu().double().numpy()
    out = np.empty((len(pts), 2 * FPFH_DIM), np.float32)

    def one(b: int) -> None:
        f = _fpfh_one(pts[b], normal_radius, radius, max_nn)
        out[b, :FPFH_DIM], out[b, FPFH_DIM:] = f.mean(0), f.max(0)

    workers = min(workers or os.cpu_count() or 1, len(pts))
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, range(len(pts))))
    else:
        for b in range(len(pts)):
            one(b)
    return torch.from_numpy(out)


class PerCloudCache:
    """A descriptor that remembers its result per cloud (keyed by a digest of the cloud's bytes), so the probe
    table and the extra probe columns, which embed the same clouds in different batches, compute it once.

    Args:
        fn: a descriptor ``(B, N, 3) -> (B, D)`` that treats every cloud independently (as :func:`fpfh_pooled`).
        max_items: clouds remembered at most (the oldest are forgotten first).
    """

    def __init__(self, fn, max_items: int = 20_000) -> None:
        self.fn, self.max_items = fn, max_items
        self._memo: dict[bytes, torch.Tensor] = {}
        functools.update_wrapper(self, fn)

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        """The descriptor of every cloud of ``points``, from the memo where there.

        Shapes:
            - points: ``(B, N, 3)``; output: ``(B, D)``
        """
        pts = _check_points(points).detach().cpu().contiguous()
        keys = [hashlib.sha1(c.numpy().tobytes()).digest() for c in pts]
        todo = [i for i, k in enumerate(keys) if k not in self._memo]
        if todo:
            new = self.fn(pts[todo])
            for i, row in zip(todo, new, strict=True):
                self._memo[keys[i]] = row
            while len(self._memo) > self.max_items:
                self._memo.pop(next(iter(self._memo)))
        return torch.stack([self._memo[k] for k in keys])

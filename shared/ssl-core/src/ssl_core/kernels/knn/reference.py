"""k nearest neighbours on CPU (KD-tree) and on any torch device (query blocks against all points).

Both return neighbour indices only; :func:`ssl_core.kernels.knn` orders them and recomputes the squared
distances with torch, so every implementation gives the same differentiable distances.
"""

from __future__ import annotations

import numpy as np
import torch

# Elements of one (B, block, N) distance buffer of the chunked path (16 MiB of float32).
BLOCK_ELEMENTS = 2**22


def squared_distances(query: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``|q_i - p_j|^2`` as a sum of squared coordinate differences (exact for the nearest points, unlike the
    ``|q|^2 - 2 q.p + |p|^2`` form whose cancellation swaps near ties). Shapes: (B, M, 3), (B, N, 3) -> (B, M, N)."""
    out = (query[:, :, None, 0] - points[:, None, :, 0]).square_()
    for axis in (1, 2):
        diff = query[:, :, None, axis] - points[:, None, :, axis]
        out.addcmul_(diff, diff)
    return out


def query_blocks(batch: int, n_queries: int, n_points: int):
    """Slices of queries whose (B, block, N) buffer stays within :data:`BLOCK_ELEMENTS`."""
    rows = max(1, BLOCK_ELEMENTS // max(1, batch * n_points))
    return (slice(start, start + rows) for start in range(0, n_queries, rows))


def knn_chunked(query: torch.Tensor, points: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k nearest points, one block of queries at a time (never the full B x M x N matrix)."""
    dtype = torch.promote_types(query.dtype, torch.float32)
    q, p = query.detach().to(dtype), points.detach().to(dtype)
    idx = torch.empty(*q.shape[:2], k, dtype=torch.int64, device=q.device)
    for rows in query_blocks(q.shape[0], q.shape[1], p.shape[1]):
        idx[:, rows] = squared_distances(q[:, rows], p).topk(k, dim=2, largest=False, sorted=False).indices
    return idx


def knn_kdtree(query: torch.Tensor, points: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k nearest points from one scipy ``cKDTree`` per cloud, queried on torch's threads."""
    from scipy.spatial import cKDTree

    q, p = query.detach().numpy(), points.detach().numpy()
    workers = torch.get_num_threads()
    out = np.empty((q.shape[0], q.shape[1], k), dtype=np.int64)
    for b in range(q.shape[0]):
        # an unbalanced tree builds 2x faster and queries as fast on point clouds
        _, found = cKDTree(p[b], balanced_tree=False, compact_nodes=False).query(q[b], k=k, workers=workers)
        out[b] = found.reshape(q.shape[1], k)
    return torch.from_numpy(out)

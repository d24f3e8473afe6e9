"""Ball query on any torch device: one block of queries at a time against all points.

Within a block, a running count (cumulative sum over the points in index order) gives each point inside the
ball its slot, so the first k points are found without sorting and no B x M x N matrix exists.
"""

from __future__ import annotations

import torch

from ssl_core.kernels.knn.reference import query_blocks, squared_distances


def ball_query_chunked(query: torch.Tensor, points: torch.Tensor, radius: float, k: int):
    """(indices, counts) as :func:`ssl_core.kernels.ball_query` returns them."""
    dtype = torch.promote_types(query.dtype, torch.float32)
    q, p = query.detach().to(dtype), points.detach().to(dtype)
    (b, m), n = q.shape[:2], p.shape[1]
    idx = torch.empty(b, m, k, dtype=torch.int64, device=q.device)
    counts = torch.empty(b, m, dtype=torch.int64, device=q.device)
    columns = torch.arange(n, device=q.device)
    for rows in query_blocks(b, m, n):
        inside = squared_distances(q[:, rows], p) < radius * radius  # (B, block, N)
        rank = inside.cumsum(dim=2)  # 1-based slot of each point inside the ball
        found = rank[:, :, -1]
        # points outside the ball or beyond the k-th go to a spare slot k, dropped below
        slot = torch.where(inside & (rank <= k), rank - 1, k)
        block = torch.zeros(b, slot.shape[1], k + 1, dtype=torch.int64, device=q.device)
        block.scatter_(2, slot, columns.expand_as(slot))
        block = block[:, :, :k]
        empty = torch.arange(k, device=q.device) >= found[:, :, None]
        idx[:, rows] = torch.where(empty, block[:, :, :1], block)  # PointNet++ pads with the first neighbour
        counts[:, rows] = found.clamp(max=k)
    return idx, counts

"""Ball query in Triton: a block of queries against tiles of points, slots from a running count.

Inside a tile, an exclusive cumulative sum over the points in the ball plus the count so far is each
point's slot; points with a slot below k are written, and the walk stops once every query of the block has
k. Slots left empty are then filled with the first neighbour (0 when the ball is empty), as in PointNet++.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl


@triton.jit
def _ball_query_kernel(
    Q, P, IDX, COUNT, M, N, K, r2, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, K_PAD: tl.constexpr
):
    cloud = tl.program_id(1).to(tl.int64)
    Q += cloud * M * 3
    P += cloud * N * 3
    IDX += cloud * M * K
    COUNT += cloud * M
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < M
    qx = tl.load(Q + rows * 3, mask=row_ok, other=0.0).to(tl.float32)
    qy = tl.load(Q + rows * 3 + 1, mask=row_ok, other=0.0).to(tl.float32)
    qz = tl.load(Q + rows * 3 + 2, mask=row_ok, other=0.0).to(tl.float32)
    count = tl.where(row_ok, 0, K)  # rows past the end count as full
    first = tl.zeros((BLOCK_M,), tl.int64)
    n0 = 0
    while (n0 < N) & (tl.min(count, 0) < K):
        cols = n0 + tl.arange(0, BLOCK_N)
        ok = cols < N
        px = tl.load(P + cols * 3, mask=ok, other=0.0).to(tl.float32)
        py = tl.load(P + cols * 3 + 1, mask=ok, other=0.0).to(tl.float32)
        pz = tl.load(P + cols * 3 + 2, mask=ok, other=0.0).to(tl.float32)
        dx = qx[:, None] - px[None, :]
        dy = qy[:, None] - py[None, :]
        dz = qz[:, None] - pz[None, :]
        inside = ((dx * dx + dy * dy + dz * dz) < r2) & ok[None, :] & row_ok[:, None]
        hits = inside.to(tl.int32)
        slot = tl.cumsum(hits, 1) - hits + count[:, None]
        tl.store(
            IDX + rows[:, None] * K + slot,
            cols[None, :].to(tl.int64) + tl.zeros_like(slot).to(tl.int64),
            mask=inside & (slot < K),
        )
        tile_first = tl.min(tl.where(inside, cols[None, :], N), 1).to(tl.int64)
        first = tl.where((count == 0) & (tile_first < N), tile_first, first)
        count += tl.sum(hits, 1)
        n0 += BLOCK_N
    slots = tl.arange(0, K_PAD)
    pad = (slots[None, :] >= count[:, None]) & (slots[None, :] < K) & row_ok[:, None]
    tl.store(IDX + rows[:, None] * K + slots[None, :], first[:, None] + tl.zeros((BLOCK_M, K_PAD), tl.int64), mask=pad)
    tl.store(COUNT + rows, tl.minimum(count, K).to(tl.int64), mask=row_ok)


def ball_query_triton(
    query: torch.Tensor, points: torch.Tensor, radius: float, k: int, block_m: int = 64, block_n: int = 128
):
    """Launcher of the kernel above; returns (indices, counts) as :func:`ssl_core.kernels.ball_query`."""
    q, p = query.detach().contiguous(), points.detach().contiguous()
    (b, m), n = q.shape[:2], p.shape[1]
    idx = torch.empty(b, m, k, dtype=torch.int64, device=q.device)
    counts = torch.empty(b, m, dtype=torch.int64, device=q.device)
    guard = torch.cuda.device(q.device) if q.is_cuda else contextlib.nullcontext()
    with guard:
        _ball_query_kernel[(triton.cdiv(m, block_m), b)](
            q,
            p,
            idx,
            counts,
            m,
            n,
            k,
            float(radius) ** 2,
            BLOCK_M=block_m,
            BLOCK_N=block_n,
            K_PAD=max(2, triton.next_power_of_2(k)),
        )
    return idx, counts

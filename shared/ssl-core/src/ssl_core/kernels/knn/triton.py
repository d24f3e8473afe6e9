"""k nearest neighbours in Triton: a block of queries against tiles of points, the best k kept in registers.

Per tile, the nearest remaining point of each query replaces the query's current worst neighbour while it is
closer (at most k times; the loop stops as soon as no query improves), so a query block costs
O(N k / BLOCK_N) tile reductions and no B x M x N matrix is written.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl


@triton.jit
def _knn_kernel(Q, P, IDX, M, N, K, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, K_PAD: tl.constexpr):
    cloud = tl.program_id(1).to(tl.int64)
    Q += cloud * M * 3
    P += cloud * N * 3
    IDX += cloud * M * K
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < M
    qx = tl.load(Q + rows * 3, mask=row_ok, other=0.0).to(tl.float32)
    qy = tl.load(Q + rows * 3 + 1, mask=row_ok, other=0.0).to(tl.float32)
    qz = tl.load(Q + rows * 3 + 2, mask=row_ok, other=0.0).to(tl.float32)
    slots = tl.arange(0, K_PAD)
    # padding slots (>= K) hold -inf: never the worst, so never replaced
    best_d = tl.where(slots[None, :] < K, float("inf"), float("-inf")) + tl.zeros((BLOCK_M, K_PAD), tl.float32)
    best_i = tl.zeros((BLOCK_M, K_PAD), tl.int64)
    for n0 in range(0, N, BLOCK_N):
        cols = tl.arange(0, BLOCK_N)
        ok = n0 + cols < N
        px = tl.load(P + (n0 + cols) * 3, mask=ok, other=0.0).to(tl.float32)
        py = tl.load(P + (n0 + cols) * 3 + 1, mask=ok, other=0.0).to(tl.float32)
        pz = tl.load(P + (n0 + cols) * 3 + 2, mask=ok, other=0.0).to(tl.float32)
        dx = qx[:, None] - px[None, :]
        dy = qy[:, None] - py[None, :]
        dz = qz[:, None] - pz[None, :]
        d = tl.where(ok[None, :], dx * dx + dy * dy + dz * dz, float("inf"))
        j = 0
        improved = True
        while improved & (j < K):
            nearest = tl.min(d, 1)
            which = tl.argmin(d, 1)  # first index on ties, as the reference's order
            worst = tl.max(best_d, 1)
            slot = tl.argmax(best_d, 1)
            take = nearest < worst
            hit = (slots[None, :] == slot[:, None]) & take[:, None]
            best_d = tl.where(hit, nearest[:, None], best_d)
            best_i = tl.where(hit, (which.to(tl.int64) + n0)[:, None], best_i)
            d = tl.where(cols[None, :] == which[:, None], float("inf"), d)
            improved = tl.max(take.to(tl.int32), 0) > 0
            j += 1
    tl.store(IDX + rows[:, None] * K + slots[None, :], best_i, mask=row_ok[:, None] & (slots[None, :] < K))


def knn_triton(query: torch.Tensor, points: torch.Tensor, k: int, block_m: int = 64, block_n: int = 128):
    """Launcher of the kernel above: unordered indices of the k nearest points. Shapes as in
    :func:`ssl_core.kernels.knn`."""
    q, p = query.detach().contiguous(), points.detach().contiguous()
    (b, m), n = q.shape[:2], p.shape[1]
    idx = torch.empty(b, m, k, dtype=torch.int64, device=q.device)
    guard = torch.cuda.device(q.device) if q.is_cuda else contextlib.nullcontext()
    with guard:
        _knn_kernel[(triton.cdiv(m, block_m), b)](
            q, p, idx, m, n, k, BLOCK_M=block_m, BLOCK_N=block_n, K_PAD=max(2, triton.next_power_of_2(k))
        )
    return idx

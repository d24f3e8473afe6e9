"""Farthest point sampling in Triton: one program per cloud (the loop of reference.py, on the GPU).

Each step loads the newest sample, walks over the cloud in blocks, lowers the stored distances and keeps the
block-wise maximum; the largest one (first index on ties, like the reference) is the next sample. The
distances live in a global (B, N) buffer, so N is not limited by registers.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl


@triton.jit
def _fps_kernel(P, IDX, DIST, N, N_SAMPLES, start, BLOCK: tl.constexpr):
    cloud = tl.program_id(0).to(tl.int64)
    P += cloud * N * 3
    DIST += cloud * N
    IDX += cloud * N_SAMPLES
    far = tl.full((), 0, tl.int64) + start
    for i in range(N_SAMPLES):
        tl.store(IDX + i, far)
        cx = tl.load(P + far * 3)
        cy = tl.load(P + far * 3 + 1)
        cz = tl.load(P + far * 3 + 2)
        best = tl.full((), -1.0, tl.float32)
        best_idx = tl.full((), 0, tl.int64)
        for n0 in range(0, N, BLOCK):
            offs = n0 + tl.arange(0, BLOCK)
            ok = offs < N
            dx = tl.load(P + offs * 3, mask=ok, other=0.0).to(tl.float32) - cx
            dy = tl.load(P + offs * 3 + 1, mask=ok, other=0.0).to(tl.float32) - cy
            dz = tl.load(P + offs * 3 + 2, mask=ok, other=0.0).to(tl.float32) - cz
            d = tl.minimum(tl.load(DIST + offs, mask=ok, other=float("inf")), dx * dx + dy * dy + dz * dz)
            tl.store(DIST + offs, d, mask=ok)
            d = tl.where(ok, d, -1.0)
            block_best = tl.max(d, 0)
            block_idx = tl.argmax(d, 0).to(tl.int64) + n0  # first index of the block maximum
            take = block_best > best  # strict: an earlier block keeps ties
            best_idx = tl.where(take, block_idx, best_idx)
            best = tl.where(take, block_best, best)
        far = best_idx
        tl.debug_barrier()  # the next step reads distances other threads of this program wrote


def fps_triton(points: torch.Tensor, n_samples: int, start: int = 0, block: int = 1024) -> torch.Tensor:
    """Launcher of the kernel above; arguments as in :func:`ssl_core.kernels.farthest_point_sampling`."""
    p = points.detach().contiguous()
    b, n = p.shape[:2]
    idx = torch.empty(b, n_samples, dtype=torch.int64, device=p.device)
    dist = torch.full((b, n), float("inf"), dtype=torch.float32, device=p.device)
    guard = torch.cuda.device(p.device) if p.is_cuda else contextlib.nullcontext()
    with guard:
        _fps_kernel[(b,)](p, idx, dist, n, n_samples, start, BLOCK=min(block, triton.next_power_of_2(n)), num_warps=8)
    return idx

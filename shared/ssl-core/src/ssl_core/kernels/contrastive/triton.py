r"""Triton log-sum-exp of scaled similarities, tiled so that no N x M matrix exists (flash attention, Inf-CL).

Forward, one program per block of anchor rows: walk over column tiles of candidates, compute the tile
``S = s * A_blk @ C_tile^T`` (its dot product itself tiled over the embedding dimension) and keep an online
log-sum-exp: with ``m`` the running maximum and ``l`` the running sum of ``exp(S - m)``,

    m' = max(m, max_k S_ik),   l' = l * exp(m - m') + sum_k exp(S_ik - m'),   lse = m + log l.

Backward (see reference.py for the derivation), with ``P_ik = exp(S_ik - lse_i)`` recomputed tile by tile:

    dA_i = s g_i sum_k P_ik c_k          (one program per anchor block, loop over candidate tiles)
    dC_k = s sum_i g_i P_ik a_i          (one program per candidate block, loop over anchor tiles)

Each writes its own block, so neither needs atomics. The products with P run in float32 (TF32 unless
``torch.get_float32_matmul_precision()`` is ``"highest"``): P is at most 1 and often ~1/M, which half
precision would flush to zero at large M.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

# Tile sizes on a GPU; the tests pass small ones so that odd sizes cross several tiles under the interpreter.
DEFAULT_BLOCKS = {"block_m": 64, "block_n": 64, "block_d": 64, "block_out": 128}


@triton.jit
def _similarity_tile(
    A,
    C,
    rows,
    cols,
    row_ok,
    col_ok,
    D,
    stride_a,
    stride_c,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr,
):
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        dd = d0 + tl.arange(0, BLOCK_D)
        d_ok = dd < D
        a = tl.load(A + rows[:, None] * stride_a + dd[None, :], mask=row_ok[:, None] & d_ok[None, :], other=0.0)
        c = tl.load(C + cols[:, None] * stride_c + dd[None, :], mask=col_ok[:, None] & d_ok[None, :], other=0.0)
        acc = tl.dot(a, tl.trans(c), acc, input_precision=PRECISION)
    return acc


@triton.jit
def _kept(EX, rows, row_ok, cols, col_ok, N_EX: tl.constexpr):
    """True where candidate ``cols`` counts for anchor ``rows``: inside the matrix and not excluded."""
    keep = row_ok[:, None] & col_ok[None, :]
    if N_EX >= 1:
        ex0 = tl.load(EX + rows * N_EX, mask=row_ok, other=-1)
        keep = keep & (cols[None, :] != ex0[:, None])
    if N_EX >= 2:
        ex1 = tl.load(EX + rows * N_EX + 1, mask=row_ok, other=-1)
        keep = keep & (cols[None, :] != ex1[:, None])
    return keep


@triton.jit
def _forward_kernel(
    A,
    C,
    EX,
    LSE,
    M,
    K,
    D,
    stride_a,
    stride_c,
    scale,
    N_EX: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < M
    m_i = tl.full((BLOCK_M,), float("-inf"), tl.float32)
    l_i = tl.zeros((BLOCK_M,), tl.float32)
    for n0 in range(0, K, BLOCK_N):
        cols = n0 + tl.arange(0, BLOCK_N)
        col_ok = cols < K
        s = (
            _similarity_tile(
                A, C, rows, cols, row_ok, col_ok, D, stride_a, stride_c, BLOCK_M, BLOCK_N, BLOCK_D, PRECISION
            )
            * scale
        )
        s = tl.where(_kept(EX, rows, row_ok, cols, col_ok, N_EX), s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # nothing kept yet: exp(-inf - 0) = 0
        l_i = l_i * tl.exp(m_i - m_safe) + tl.sum(tl.exp(s - m_safe[:, None]), 1)
        m_i = m_new
    lse = tl.where(l_i > 0, m_i + tl.log(tl.where(l_i > 0, l_i, 1.0)), float("-inf"))
    tl.store(LSE + rows, lse, mask=row_ok)


@triton.jit
def _row_weights(LSE, G, rows, row_ok, scale):
    """lse and s * g of a block of anchors; rows with every candidate excluded (lse = -inf) weigh 0."""
    lse = tl.load(LSE + rows, mask=row_ok, other=0.0)
    g = tl.load(G + rows, mask=row_ok, other=0.0).to(tl.float32) * scale
    finite = lse > float("-inf")
    return tl.where(finite, lse, 0.0), tl.where(finite, g, 0.0)


@triton.jit
def _backward_anchors_kernel(
    A,
    C,
    EX,
    LSE,
    G,
    DA,
    M,
    K,
    D,
    stride_a,
    stride_c,
    stride_da,
    scale,
    N_EX: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_OUT: tl.constexpr,
    PRECISION: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < M
    out = tl.program_id(1) * BLOCK_OUT + tl.arange(0, BLOCK_OUT)
    out_ok = out < D
    lse, g = _row_weights(LSE, G, rows, row_ok, scale)
    acc = tl.zeros((BLOCK_M, BLOCK_OUT), tl.float32)
    for n0 in range(0, K, BLOCK_N):
        cols = n0 + tl.arange(0, BLOCK_N)
        col_ok = cols < K
        s = (
            _similarity_tile(
                A, C, rows, cols, row_ok, col_ok, D, stride_a, stride_c, BLOCK_M, BLOCK_N, BLOCK_D, PRECISION
            )
            * scale
        )
        p = tl.where(_kept(EX, rows, row_ok, cols, col_ok, N_EX), tl.exp(s - lse[:, None]), 0.0)
        c = tl.load(C + cols[:, None] * stride_c + out[None, :], mask=col_ok[:, None] & out_ok[None, :], other=0.0)
        acc = tl.dot(p, c.to(tl.float32), acc, input_precision=PRECISION)
    acc = acc * g[:, None]  # g_i is constant along the row: applied once, after the sum
    tl.store(
        DA + rows[:, None] * stride_da + out[None, :],
        acc.to(DA.dtype.element_ty),
        mask=row_ok[:, None] & out_ok[None, :],
    )


@triton.jit
def _backward_candidates_kernel(
    A,
    C,
    EX,
    LSE,
    G,
    DC,
    M,
    K,
    D,
    stride_a,
    stride_c,
    stride_dc,
    scale,
    N_EX: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_OUT: tl.constexpr,
    PRECISION: tl.constexpr,
):
    cols = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < K
    out = tl.program_id(1) * BLOCK_OUT + tl.arange(0, BLOCK_OUT)
    out_ok = out < D
    acc = tl.zeros((BLOCK_N, BLOCK_OUT), tl.float32)
    for m0 in range(0, M, BLOCK_M):
        rows = m0 + tl.arange(0, BLOCK_M)
        row_ok = rows < M
        lse, g = _row_weights(LSE, G, rows, row_ok, scale)
        s = (
            _similarity_tile(
                A, C, rows, cols, row_ok, col_ok, D, stride_a, stride_c, BLOCK_M, BLOCK_N, BLOCK_D, PRECISION
            )
            * scale
        )
        p = tl.where(_kept(EX, rows, row_ok, cols, col_ok, N_EX), tl.exp(s - lse[:, None]), 0.0) * g[:, None]
        a = tl.load(A + rows[:, None] * stride_a + out[None, :], mask=row_ok[:, None] & out_ok[None, :], other=0.0)
        acc = tl.dot(tl.trans(p), a.to(tl.float32), acc, input_precision=PRECISION)
    tl.store(
        DC + cols[:, None] * stride_dc + out[None, :],
        acc.to(DC.dtype.element_ty),
        mask=col_ok[:, None] & out_ok[None, :],
    )


def _device_guard(device: torch.device):
    # Triton launches on the current CUDA device: make it the tensors' one
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _precision() -> str:
    # follow torch's own switch for float32 products; half inputs ignore it
    return "ieee" if torch.get_float32_matmul_precision() == "highest" else "tf32"


def _launch_args(blocks: dict, dim: int) -> dict:
    b = {**DEFAULT_BLOCKS, **blocks}
    block_d = min(b["block_d"], max(16, triton.next_power_of_2(dim)))
    block_out = min(b["block_out"], max(16, triton.next_power_of_2(dim)))
    return {"BLOCK_M": b["block_m"], "BLOCK_N": b["block_n"], "BLOCK_D": block_d, "BLOCK_OUT": block_out}


class TritonSimilarityLogSumExp(torch.autograd.Function):
    """Forward and backward kernels above as one autograd node."""

    @staticmethod
    def forward(ctx, anchors, candidates, scale, exclude, blocks):
        a, c = anchors.contiguous(), candidates.contiguous()
        m, d = a.shape
        k = c.shape[0]
        ex = exclude.contiguous() if exclude is not None else a.new_empty(0, dtype=torch.int64)
        n_ex = 0 if exclude is None else exclude.shape[1]
        lse = torch.empty(m, dtype=torch.float32, device=a.device)
        cfg = _launch_args(blocks, d)
        grid = (triton.cdiv(m, cfg["BLOCK_M"]),)
        with _device_guard(a.device):
            _forward_kernel[grid](
                a,
                c,
                ex,
                lse,
                m,
                k,
                d,
                a.stride(0),
                c.stride(0),
                scale,
                N_EX=n_ex,
                BLOCK_M=cfg["BLOCK_M"],
                BLOCK_N=cfg["BLOCK_N"],
                BLOCK_D=cfg["BLOCK_D"],
                PRECISION=_precision(),
            )
        ctx.save_for_backward(a, c, ex, lse)
        ctx.scale, ctx.n_ex, ctx.cfg = scale, n_ex, cfg
        return lse

    @staticmethod
    def backward(ctx, grad_lse):
        a, c, ex, lse = ctx.saved_tensors
        cfg = ctx.cfg
        (m, d), k = a.shape, c.shape[0]
        g = grad_lse.contiguous()
        common = dict(
            N_EX=ctx.n_ex,
            BLOCK_M=cfg["BLOCK_M"],
            BLOCK_N=cfg["BLOCK_N"],
            BLOCK_D=cfg["BLOCK_D"],
            BLOCK_OUT=cfg["BLOCK_OUT"],
            PRECISION=_precision(),
        )
        grad_a = grad_c = None
        with _device_guard(a.device):
            if ctx.needs_input_grad[0]:
                grad_a = torch.empty_like(a)
                grid = (triton.cdiv(m, cfg["BLOCK_M"]), triton.cdiv(d, cfg["BLOCK_OUT"]))
                _backward_anchors_kernel[grid](
                    a, c, ex, lse, g, grad_a, m, k, d, a.stride(0), c.stride(0), grad_a.stride(0), ctx.scale, **common
                )
            if ctx.needs_input_grad[1]:
                grad_c = torch.empty_like(c)
                grid = (triton.cdiv(k, cfg["BLOCK_N"]), triton.cdiv(d, cfg["BLOCK_OUT"]))
                _backward_candidates_kernel[grid](
                    a, c, ex, lse, g, grad_c, m, k, d, a.stride(0), c.stride(0), grad_c.stride(0), ctx.scale, **common
                )
        return grad_a, grad_c, None, None, None


def triton_similarity_logsumexp(
    anchors: torch.Tensor,
    candidates: torch.Tensor,
    scale: float,
    exclude: torch.Tensor | None = None,
    blocks: dict | None = None,
) -> torch.Tensor:
    """The tiled Triton kernels. Arguments as in :func:`ssl_core.kernels.similarity_logsumexp`; ``blocks``
    overrides tile sizes (``block_m``, ``block_n``, ``block_d``, ``block_out``; powers of two, at least 16)."""
    lse = TritonSimilarityLogSumExp.apply(anchors, candidates, float(scale), exclude, blocks or {})
    return lse.to(torch.promote_types(anchors.dtype, torch.float32))

r"""PyTorch log-sum-exp of scaled similarities: the dense formula and the chunked autograd path.

For anchors :math:`a_i`, candidates :math:`c_k` and an inverse temperature :math:`s = 1/\tau`, both compute

.. math::
    \mathrm{lse}_i = \log \sum_{k \notin E_i} \exp(s\, a_i \cdot c_k)

where :math:`E_i` are the excluded candidates of anchor :math:`i` (itself in NT-Xent, itself and its positive
in DCL). Its gradient, with :math:`P_{ik} = \exp(s\, a_i \cdot c_k - \mathrm{lse}_i)` (zero on :math:`E_i`) and
:math:`g_i` the incoming gradient of :math:`\mathrm{lse}_i`, is

.. math::
    \frac{\partial L}{\partial a_i} = s\, g_i \sum_k P_{ik} c_k, \qquad
    \frac{\partial L}{\partial c_k} = s \sum_i g_i P_{ik} a_i

so the chunked backward needs only ``lse`` and the inputs: it recomputes :math:`P` one row block at a time
(as flash attention does), and no N x M matrix ever exists.
"""

from __future__ import annotations

import torch

# Bytes of one (block x M) similarity buffer in the chunked path. Two such buffers are alive at a time, so
# the extra memory stays near 2 x 32 MiB whatever N is.
BLOCK_BYTES = 32 * 2**20


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # half inputs are accumulated in float32; float64 stays float64 (gradcheck)
    return torch.promote_types(dtype, torch.float32)


def _mask_excluded(sim: torch.Tensor, exclude: torch.Tensor | None) -> torch.Tensor:
    """Set ``sim[i, exclude[i, j]]`` to -inf in place, skipping entries equal to -1."""
    if exclude is None:
        return sim
    rows = torch.arange(sim.shape[0], device=sim.device)
    for column in exclude.unbind(1):
        keep = column >= 0
        sim[rows[keep], column[keep]] = float("-inf")
    return sim


def dense_similarity_logsumexp(
    anchors: torch.Tensor, candidates: torch.Tensor, scale: float, exclude: torch.Tensor | None = None
) -> torch.Tensor:
    """The formula on the full similarity matrix (the reference; memory O(N M)). Arguments as in
    :func:`ssl_core.kernels.similarity_logsumexp`."""
    dtype = _compute_dtype(anchors.dtype)
    sim = (anchors.to(dtype) @ candidates.to(dtype).T) * scale  # (M, K)
    if exclude is not None:
        mask = torch.zeros_like(sim, dtype=torch.bool)
        _mask_excluded(mask, exclude)  # a bool tensor takes -inf as True
        sim = sim.masked_fill(mask, float("-inf"))
    return torch.logsumexp(sim, dim=1)


def _rows_per_block(n_candidates: int, itemsize: int, block_bytes: int) -> int:
    return max(1, block_bytes // (n_candidates * itemsize))


class ChunkedSimilarityLogSumExp(torch.autograd.Function):
    """Row blocks of the similarity matrix, forward and (recomputed) backward."""

    @staticmethod
    def forward(ctx, anchors, candidates, scale, exclude, block_bytes):
        dtype = _compute_dtype(anchors.dtype)
        a, c = anchors.to(dtype), candidates.to(dtype)
        rows = _rows_per_block(c.shape[0], c.element_size(), block_bytes)
        lse = torch.empty(a.shape[0], dtype=dtype, device=a.device)
        for start in range(0, a.shape[0], rows):
            stop = start + rows
            sim = torch.mm(a[start:stop], c.T).mul_(scale)  # (rows, K)
            _mask_excluded(sim, None if exclude is None else exclude[start:stop])
            # in-place log-sum-exp: one (rows, K) buffer instead of torch.logsumexp's temporaries
            peak = sim.amax(dim=1, keepdim=True)
            peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))  # rows with nothing left
            lse[start:stop] = sim.sub_(peak).exp_().sum(dim=1).log_().add_(peak.squeeze(1))
        ctx.save_for_backward(anchors, candidates, exclude, lse)
        ctx.scale, ctx.block_bytes = scale, block_bytes
        return lse

    @staticmethod
    def backward(ctx, grad_lse):
        anchors, candidates, exclude, lse = ctx.saved_tensors
        dtype = _compute_dtype(anchors.dtype)
        a, c = anchors.to(dtype), candidates.to(dtype)
        # rows whose candidates are all excluded have lse = -inf and contribute nothing
        weight = torch.where(torch.isfinite(lse), grad_lse.to(dtype) * ctx.scale, torch.zeros_like(lse))
        lse = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))
        grad_a = torch.empty_like(a) if ctx.needs_input_grad[0] else None
        grad_c = torch.zeros_like(c) if ctx.needs_input_grad[1] else None
        rows = _rows_per_block(c.shape[0], c.element_size(), ctx.block_bytes)
        for start in range(0, a.shape[0], rows):
            stop = start + rows
            sim = torch.mm(a[start:stop], c.T).mul_(ctx.scale)
            _mask_excluded(sim, None if exclude is None else exclude[start:stop])
            p = sim.sub_(lse[start:stop, None]).exp_().mul_(weight[start:stop, None])  # s g_i P_ik
            if grad_a is not None:
                torch.mm(p, c, out=grad_a[start:stop])
            if grad_c is not None:
                grad_c.addmm_(p.T, a[start:stop])
        grad_a = None if grad_a is None else grad_a.to(anchors.dtype)
        grad_c = None if grad_c is None else grad_c.to(candidates.dtype)
        return grad_a, grad_c, None, None, None


def chunked_similarity_logsumexp(
    anchors: torch.Tensor,
    candidates: torch.Tensor,
    scale: float,
    exclude: torch.Tensor | None = None,
    block_bytes: int = BLOCK_BYTES,
) -> torch.Tensor:
    """The formula one row block at a time, backward by recomputation. Arguments as in
    :func:`ssl_core.kernels.similarity_logsumexp`; ``block_bytes`` bounds one (block x M) buffer."""
    return ChunkedSimilarityLogSumExp.apply(anchors, candidates, scale, exclude, block_bytes)

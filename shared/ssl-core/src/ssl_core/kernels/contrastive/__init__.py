"""Log-sum-exp of scaled similarities without the N x M matrix: the core of NT-Xent, InfoNCE and DCL."""

from __future__ import annotations

import torch

from ssl_core.errors import ConfigError
from ssl_core.kernels.contrastive.reference import chunked_similarity_logsumexp, dense_similarity_logsumexp
from ssl_core.kernels.dispatch import select


def similarity_implementation(anchors: torch.Tensor, candidates: torch.Tensor, impl: str = "auto") -> str:
    """Name of the implementation :func:`similarity_logsumexp` runs for these inputs.

    The losses ask first, so that below the size threshold (``"dense"``) they keep their own one-matrix
    formula and above it hand the denominator to the tiled kernels.

    Args:
        anchors: ``(M, D)`` anchors.
        candidates: ``(K, D)`` candidates.
        impl: ``"auto"``, ``"dense"``, ``"chunked"`` or ``"triton"`` (see :func:`ssl_core.kernels.select`).
    """
    return select("contrastive", anchors.device, anchors.dtype, anchors.shape[0] * candidates.shape[0], impl).name


def similarity_logsumexp(
    anchors: torch.Tensor,
    candidates: torch.Tensor,
    temperature: float,
    exclude: torch.Tensor | None = None,
    impl: str = "auto",
) -> torch.Tensor:
    r"""Log-sum-exp over candidates of each anchor's temperature-scaled dot products, leaving some out.

    .. math::
        \mathrm{lse}_i = \log \sum_{k \notin E_i} \exp(a_i \cdot c_k / \tau)

    The denominator of the InfoNCE family (van den Oord et al., 2018; SimCLR's NT-Xent, Chen et al., 2020;
    DCL, Yeh et al., 2022): a loss is ``lse_i - a_i . c_{p(i)} / tau`` averaged over anchors. The tiled
    implementations never hold the M x K similarity matrix (Inf-CL, Cheng et al., 2024): the chunked PyTorch
    one works on row blocks and recomputes them in backward; the Triton one keeps an online log-sum-exp over
    column tiles. Which one runs follows :func:`ssl_core.kernels.dispatch.select` (op ``"contrastive"``,
    size ``M * K``).

    Args:
        anchors: rows :math:`a_i` (L2-normalised by the caller if the loss wants cosine similarities).
        candidates: rows :math:`c_k`; may be the same tensor as ``anchors``.
        temperature: :math:`\tau > 0`.
        exclude: per anchor, up to two candidate indices to leave out (-1 = none), e.g. the anchor itself.
        impl: ``"auto"``, ``"dense"``, ``"chunked"`` or ``"triton"``.

    Shapes:
        - anchors: ``(M, D)``; candidates: ``(K, D)``; exclude: ``(M, E)`` with ``E <= 2``, int64
        - output: ``(M,)``, float32 (float64 for float64 inputs); differentiable in anchors and candidates
    """
    if anchors.ndim != 2 or candidates.ndim != 2 or anchors.shape[1] != candidates.shape[1]:
        raise ValueError(
            f"expected anchors (M, D) and candidates (K, D), got {tuple(anchors.shape)} and {tuple(candidates.shape)}"
        )
    if anchors.device != candidates.device or anchors.dtype != candidates.dtype:
        raise ValueError(
            f"anchors and candidates must share device and dtype, got {anchors.device}/{anchors.dtype} and "
            f"{candidates.device}/{candidates.dtype}"
        )
    if temperature <= 0:
        raise ConfigError(f"temperature must be positive, got {temperature}")
    if exclude is not None:
        if exclude.ndim != 2 or exclude.shape[0] != anchors.shape[0] or exclude.shape[1] > 2:
            raise ValueError(
                f"exclude must be (M, E) with E <= 2 and M = {anchors.shape[0]}, got {tuple(exclude.shape)}"
            )
        if exclude.dtype != torch.int64:
            raise ValueError(f"exclude must hold int64 indices, got {exclude.dtype}")
        if exclude.shape[1] == 0:
            exclude = None
    scale = 1.0 / temperature
    choice = similarity_implementation(anchors, candidates, impl)
    if choice == "dense":
        return dense_similarity_logsumexp(anchors, candidates, scale, exclude)
    if choice == "chunked":
        return chunked_similarity_logsumexp(anchors, candidates, scale, exclude)
    from ssl_core.kernels.contrastive.triton import triton_similarity_logsumexp  # imports Triton only when used

    return triton_similarity_logsumexp(anchors, candidates, scale, exclude)


__all__ = ["similarity_implementation", "similarity_logsumexp"]

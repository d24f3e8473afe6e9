"""Instance-contrastive objectives: NT-Xent (SimCLR), InfoNCE (MoCo) and decoupled contrastive learning (DCL).

All three build the ``(anchors, candidates)`` similarity matrix for small batches; above a size threshold
(or with ``impl=``) their log-sum-exp runs in the tiled kernels of :mod:`ssl_core.kernels`, which compute
the same values without materialising it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.kernels import similarity_implementation, similarity_logsumexp
from ssl_core.losses._common import check_pair, check_positive, gather


def _both_views(
    z_a: torch.Tensor, z_b: torch.Tensor, gather_distributed: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Anchors and candidates of the two-view losses (:func:`nt_xent`, :func:`dcl`): every embedding of both
    views is an anchor, and its candidates are both views of every rank.

    Args:
        z_a, z_b: this rank's (normalised) embeddings of the two views; row ``i`` of each is sample ``i``.
        gather_distributed: take the candidates from every rank.

    Returns:
        the anchors (this rank's ``z_a`` then ``z_b``), the candidates (every rank's ``z_a``, then every
        rank's ``z_b``), ``local``: where this rank's samples sit among one view's ``N`` candidates (so sample
        ``i``'s ``z_a`` is candidate ``local[i]`` and its ``z_b`` candidate ``local[i] + N``), and ``N``.

    Shapes:
        - z_a, z_b: ``(n, D)``; anchors: ``(2n, D)``; candidates: ``(2N, D)``; local: ``(n,)``
    """
    g_a, offset = gather(z_a, gather_distributed)
    g_b, _ = gather(z_b, gather_distributed)
    local = torch.arange(z_a.shape[0], device=z_a.device) + offset
    return torch.cat([z_a, z_b]), torch.cat([g_a, g_b]), local, g_a.shape[0]


def nt_xent(
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    temperature: float = 0.5,
    gather_distributed: bool = False,
    impl: str = "auto",
) -> torch.Tensor:
    r"""Normalized temperature-scaled cross entropy (SimCLR; Chen et al., 2020, eq. 1).

    The ``2N`` embeddings of both views are L2-normalised. Each one is an anchor whose positive is the
    other view of the same sample and whose negatives are the other ``2N - 2`` embeddings, so every anchor
    has ``2N - 1`` candidates:

    .. math::
        \ell_i = -\log \frac{\exp(s_{i,p(i)}/\tau)}{\sum_{k \ne i} \exp(s_{i,k}/\tau)}, \qquad
        L = \frac{1}{2N}\sum_i \ell_i

    With ``gather_distributed=True`` the candidates are the embeddings of all ranks (gathered with
    :func:`ssl_core.distributed.gather_with_grad`), the anchors stay local, and the mean is over local
    anchors; averaged over ranks by DDP this equals the loss of one process on the global batch.

    Args:
        z_a: embeddings of the first view.
        z_b: embeddings of the second view; row ``i`` is the positive of ``z_a[i]``.
        temperature: :math:`\tau`; SimCLR uses 0.5 on CIFAR-10 and 0.1 on ImageNet.
        gather_distributed: take negatives from every rank.
        impl: ``"auto"`` (dense below :data:`ssl_core.kernels.dispatch.CONTRASTIVE_MIN_SIZE` anchors x
            candidates, tiled above), ``"dense"``, ``"chunked"`` or ``"triton"``; see :mod:`ssl_core.kernels`.

    Shapes:
        - z_a, z_b: ``(N, D)``
        - output: scalar
    """
    check_pair(z_a, z_b, "nt_xent")
    check_positive(temperature, "temperature")
    z_a, z_b = F.normalize(z_a, dim=1), F.normalize(z_b, dim=1)
    anchors, candidates, local, big_n = _both_views(z_a, z_b, gather_distributed)  # (2n, D), (2N, D)
    self_idx = torch.cat([local, local + big_n])  # where each anchor sits among the candidates
    pos_idx = torch.cat([local + big_n, local])
    choice = similarity_implementation(anchors, candidates, impl)
    if choice != "dense":  # tiled kernel: the (2n, 2N) logits never exist
        lse = similarity_logsumexp(anchors, candidates, temperature, self_idx[:, None], choice)
        return (lse - (anchors * candidates[pos_idx]).sum(dim=1) / temperature).mean()
    logits = anchors @ candidates.T / temperature  # (2n, 2N)
    rows = torch.arange(len(anchors), device=z_a.device)
    logits = logits.masked_fill(
        torch.zeros_like(logits, dtype=torch.bool).index_put_((rows, self_idx), torch.tensor(True)), float("-inf")
    )
    return F.cross_entropy(logits, pos_idx)


def info_nce(
    query: torch.Tensor,
    key: torch.Tensor,
    queue: torch.Tensor | None = None,
    temperature: float = 0.2,
    gather_distributed: bool = False,
    impl: str = "auto",
) -> torch.Tensor:
    r"""InfoNCE of queries against keys (CPC, van den Oord et al., 2018; MoCo, He et al., 2020, eq. 1).

    Queries and keys are L2-normalised; ``key[i]`` is the positive of ``query[i]``.

    - With a ``queue`` (MoCo v1/v2) the negatives are the queued keys, a memory bank of earlier batches
      (see :class:`ssl_core.teacher.FeatureQueue`), and each query has ``1 + K`` candidates:
      :math:`\ell_i = -\log \frac{\exp(q_i\cdot k_i/\tau)}{\exp(q_i\cdot k_i/\tau) + \sum_{j} \exp(q_i\cdot
      m_j/\tau)}`. The loss of a query depends on no other sample of the batch, so gathering is not needed.
    - Without a queue (MoCo v3, CPC) the negatives are the other keys of the batch -- of every rank with
      ``gather_distributed=True`` -- and each query has ``N`` candidates.

    The mean is over the (local) queries. The caller stops the gradient into the keys where the method says
    so (MoCo's keys come from the momentum encoder). MoCo v3 scales this loss by :math:`2\tau`; that factor
    is left to the method.

    Args:
        query: query embeddings.
        key: key embeddings; row ``i`` is the positive of ``query[i]``.
        queue: optional memory bank of negative keys (normalised again here).
        temperature: :math:`\tau`; MoCo v1 uses 0.07, MoCo v2 0.2, MoCo v3 0.2 (ViT) or 1.0 (ResNet).
        gather_distributed: without a queue, take the negative keys from every rank.
        impl: ``"auto"``, ``"dense"``, ``"chunked"`` or ``"triton"``, as in :func:`nt_xent`.

    Shapes:
        - query, key: ``(N, D)``
        - queue: ``(K, D)``
        - output: scalar
    """
    check_pair(query, key, "info_nce")
    check_positive(temperature, "temperature")
    q, k = F.normalize(query, dim=1), F.normalize(key, dim=1)
    if queue is not None:
        if queue.ndim != 2 or queue.shape[1] != q.shape[1]:
            raise ValueError(f"info_nce expects a (K, {q.shape[1]}) queue, got {tuple(queue.shape)}")
        l_pos = (q * k).sum(dim=1, keepdim=True)  # (N, 1)
        negatives = F.normalize(queue, dim=1)
        choice = similarity_implementation(q, negatives, impl)
        if choice != "dense":  # tiled kernel over the queue, the positive added to its log-sum-exp
            pos = l_pos.squeeze(1) / temperature
            lse = torch.logaddexp(pos, similarity_logsumexp(q, negatives, temperature, None, choice))
            return (lse - pos).mean()
        l_neg = q @ negatives.T  # (N, K)
        logits = torch.cat([l_pos, l_neg], dim=1) / temperature
        return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))
    keys, offset = gather(k, gather_distributed)
    choice = similarity_implementation(q, keys, impl)
    if choice != "dense":  # tiled kernel: the (n, N) logits never exist
        lse = similarity_logsumexp(q, keys, temperature, None, choice)
        return (lse - (q * keys[offset : offset + len(q)]).sum(dim=1) / temperature).mean()
    logits = q @ keys.T / temperature  # (n, N)
    return F.cross_entropy(logits, torch.arange(len(q), device=q.device) + offset)


def dcl(
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    temperature: float = 0.1,
    weight_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    gather_distributed: bool = False,
    impl: str = "auto",
) -> torch.Tensor:
    r"""Decoupled contrastive loss (DCL; Yeh et al., 2022, eq. 6): NT-Xent without the positive in the denominator.

    With L2-normalised views :math:`z^{(1)} = z_a`, :math:`z^{(2)} = z_b`, every embedding
    :math:`z_i^{(k)}` is an anchor:

    .. math::
        \ell_i^{(k)} = -w_i\,\langle z_i^{(1)}, z_i^{(2)}\rangle/\tau
            + \log \sum_{l \in \{1,2\},\, j \ne i} \exp(\langle z_i^{(k)}, z_j^{(l)}\rangle/\tau),
        \qquad L = \frac{1}{2N}\sum_{i,k} \ell_i^{(k)}

    The denominator holds the ``2N - 2`` negatives only, which removes the negative-positive coupling of
    InfoNCE. ``weight_fn`` gives the positive weights :math:`w_i` (1 without it); :func:`dclw` uses the
    von Mises-Fisher weighting. Same reduction as lightly's ``DCLLoss``.

    Args:
        z_a: embeddings of the first view.
        z_b: embeddings of the second view; row ``i`` is the positive of ``z_a[i]``.
        temperature: :math:`\tau` (the paper uses 0.1 on ImageNet).
        weight_fn: ``weight_fn(z_a, z_b) -> (N,)`` weights of the positive terms, called on the normalised
            local views; weights are used as given (detach them inside ``weight_fn`` if they should not be
            differentiated).
        gather_distributed: take negatives from every rank.
        impl: ``"auto"``, ``"dense"``, ``"chunked"`` or ``"triton"``, as in :func:`nt_xent`.

    Shapes:
        - z_a, z_b: ``(N, D)``
        - output: scalar
    """
    check_pair(z_a, z_b, "dcl")
    check_positive(temperature, "temperature")
    n = z_a.shape[0]
    if n < 2 and not gather_distributed:
        raise ValueError("dcl needs at least two pairs: with one there are no negatives")
    z_a, z_b = F.normalize(z_a, dim=1), F.normalize(z_b, dim=1)
    positive = (z_a * z_b).sum(dim=1) / temperature  # (n,)
    if weight_fn is not None:
        weights = weight_fn(z_a, z_b)
        if weights.shape != (n,):
            raise ValueError(f"weight_fn must return ({n},) weights, got {tuple(weights.shape)}")
        positive = positive * weights
    anchors, candidates, local, big_n = _both_views(z_a, z_b, gather_distributed)  # (2n, D), (2N, D)
    choice = similarity_implementation(anchors, candidates, impl)
    if choice != "dense":  # tiled kernel, each anchor's own column and its positive's left out
        cols = torch.cat([local, local])
        exclude = torch.stack([cols, cols + big_n], dim=1)
        negative = similarity_logsumexp(anchors, candidates, temperature, exclude, choice)
        return (negative - positive.repeat(2)).mean()
    logits = anchors @ candidates.T / temperature  # (2n, 2N)
    # drop each anchor's own column and its positive's: both sit at `local` and `local + N`
    same_sample = torch.zeros_like(logits, dtype=torch.bool)
    rows = torch.arange(2 * n, device=z_a.device)
    cols = torch.cat([local, local])
    same_sample[rows, cols] = True
    same_sample[rows, cols + big_n] = True
    negative = torch.logsumexp(logits.masked_fill(same_sample, float("-inf")), dim=1)  # (2n,)
    return (negative - positive.repeat(2)).mean()


def dclw(
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    temperature: float = 0.1,
    sigma: float = 0.5,
    gather_distributed: bool = False,
    impl: str = "auto",
) -> torch.Tensor:
    r"""Weighted decoupled contrastive loss (DCLW; Yeh et al., 2022, eq. 7).

    :func:`dcl` with the von Mises-Fisher weight of each positive pair,

    .. math::
        w_i = 2 - \frac{\exp(\langle z_i^{(1)}, z_i^{(2)}\rangle/\sigma)}
                      {\mathbb{E}_j\,\exp(\langle z_j^{(1)}, z_j^{(2)}\rangle/\sigma)},

    which up-weights hard positives (views that disagree). The expectation is over the global batch (all
    ranks with ``gather_distributed=True``), and the weights are constants for the gradient, as in lightly's
    ``DCLWLoss`` and the authors' code.

    Args:
        z_a: embeddings of the first view.
        z_b: embeddings of the second view; row ``i`` is the positive of ``z_a[i]``.
        temperature: :math:`\tau`.
        sigma: :math:`\sigma` of the weighting (paper: 0.5).
        gather_distributed: take negatives, and the expectation, over every rank.
        impl: implementation of the denominator, as in :func:`dcl`.

    Shapes:
        - z_a, z_b: ``(N, D)``
        - output: scalar
    """
    check_pair(z_a, z_b, "dclw")
    check_positive(sigma, "sigma")

    def von_mises_fisher(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        sim = ((a * b).sum(dim=1) / sigma).detach()  # (n,)
        all_sim, _ = gather(sim, gather_distributed)
        # exp(s_i) / mean_j exp(s_j), computed stably as N * softmax
        return 2 - torch.exp(sim - torch.logsumexp(all_sim, dim=0)) * all_sim.shape[0]

    return dcl(z_a, z_b, temperature, von_mises_fisher, gather_distributed, impl)


class NTXentLoss(nn.Module):
    """Module form of :func:`nt_xent` (SimCLR).

    Args:
        temperature: softmax temperature.
        gather_distributed: take negatives from every rank.
    """

    def __init__(self, temperature: float = 0.5, gather_distributed: bool = False) -> None:
        super().__init__()
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        return nt_xent(z_a, z_b, self.temperature, self.gather_distributed)


class InfoNCELoss(nn.Module):
    """Module form of :func:`info_nce` (MoCo); the queue, if any, is passed to ``forward``.

    Args:
        temperature: softmax temperature.
        gather_distributed: without a queue, take negative keys from every rank.
    """

    def __init__(self, temperature: float = 0.2, gather_distributed: bool = False) -> None:
        super().__init__()
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    def forward(self, query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor | None = None) -> torch.Tensor:
        return info_nce(query, key, queue, self.temperature, self.gather_distributed)


class DCLLoss(nn.Module):
    """Module form of :func:`dcl` (decoupled contrastive learning).

    Args:
        temperature: softmax temperature.
        weight_fn: optional weights of the positive terms.
        gather_distributed: take negatives from every rank.
    """

    def __init__(
        self,
        temperature: float = 0.1,
        weight_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        self.temperature = temperature
        self.weight_fn = weight_fn
        self.gather_distributed = gather_distributed

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        return dcl(z_a, z_b, self.temperature, self.weight_fn, self.gather_distributed)


class DCLWLoss(nn.Module):
    """Module form of :func:`dclw` (DCL with von Mises-Fisher weights).

    Args:
        temperature: softmax temperature.
        sigma: temperature of the weighting.
        gather_distributed: take negatives from every rank.
    """

    def __init__(self, temperature: float = 0.1, sigma: float = 0.5, gather_distributed: bool = False) -> None:
        super().__init__()
        self.temperature = temperature
        self.sigma = sigma
        self.gather_distributed = gather_distributed

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        return dclw(z_a, z_b, self.temperature, self.sigma, self.gather_distributed)

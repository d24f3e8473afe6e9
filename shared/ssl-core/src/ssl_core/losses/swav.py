"""SwAV: swapped prediction of Sinkhorn-Knopp cluster assignments."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ssl_core.distributed import is_initialized
from ssl_core.losses._common import check_positive


def _all_reduce(x: torch.Tensor, gather_distributed: bool, op=dist.ReduceOp.SUM) -> torch.Tensor:
    if gather_distributed and is_initialized():
        dist.all_reduce(x, op=op)
    return x


@torch.no_grad()
def sinkhorn_knopp(
    scores: torch.Tensor, epsilon: float = 0.05, n_iters: int = 3, gather_distributed: bool = False
) -> torch.Tensor:
    r"""Equipartitioned soft assignments of samples to prototypes (SwAV; Caron et al., 2020, eq. 3 and Alg. 1).

    Solves :math:`\max_{Q \in \mathcal{Q}} \mathrm{Tr}(Q^\top C^\top Z) + \epsilon H(Q)` over the transportation
    polytope (each of the ``K`` prototypes gets ``B/K`` of the batch, each sample a unit of mass) with
    ``n_iters`` Sinkhorn-Knopp iterations on :math:`\exp(\text{scores}/\epsilon)`, alternately normalising
    prototype rows and sample columns. With ``gather_distributed=True`` the row sums are all-reduced, so
    the codes are those of the global batch (SwAV's ``distributed_sinkhorn``); nothing is differentiated.

    Args:
        scores: prototype scores :math:`z^\top c_k` of the (local) samples.
        epsilon: entropy weight :math:`\epsilon` (0.05).
        n_iters: Sinkhorn iterations (3).
        gather_distributed: equipartition over the batch of every rank.

    Shapes:
        - scores: ``(B, K)``
        - output: ``(B, K)``; each row sums to 1.
    """
    check_positive(epsilon, "epsilon")
    if scores.ndim != 2:
        raise ValueError(f"sinkhorn_knopp expects (B, K) scores, got {tuple(scores.shape)}")
    scores = scores.detach().float() if scores.dtype in (torch.float16, torch.bfloat16) else scores.detach()
    # subtracting the global max leaves Q unchanged (a constant factor, normalised away) and avoids overflow
    top = _all_reduce(scores.max().clone(), gather_distributed, dist.ReduceOp.MAX)
    q = torch.exp((scores - top) / epsilon).T  # (K, B)
    n_protos = q.shape[0]
    batch = torch.tensor(float(q.shape[1]), dtype=q.dtype, device=q.device)
    batch = _all_reduce(batch, gather_distributed)
    q /= _all_reduce(q.sum(), gather_distributed)
    for _ in range(n_iters):
        q /= _all_reduce(q.sum(dim=1, keepdim=True), gather_distributed)  # each prototype: total mass 1/K
        q /= n_protos
        q /= q.sum(dim=0, keepdim=True)  # each sample: total mass 1/B
        q /= batch
    return (q * batch).T


def swav_loss(
    high_res_scores: Sequence[torch.Tensor],
    low_res_scores: Sequence[torch.Tensor] = (),
    queue_scores: Sequence[torch.Tensor] | None = None,
    temperature: float = 0.1,
    epsilon: float = 0.05,
    n_iters: int = 3,
    gather_distributed: bool = False,
) -> torch.Tensor:
    r"""SwAV swapped-prediction loss over multi-crop views (Caron et al., 2020, eqs. 1-2).

    For every high-resolution crop :math:`i` the codes :math:`q_i` come from :func:`sinkhorn_knopp` on its
    scores (with the scores of queued embeddings appended, then dropped); every other crop :math:`v` predicts
    them with :math:`p_v = \mathrm{softmax}(\text{scores}_v/\tau)`:

    .. math:: L = \frac{1}{|H|}\sum_{i\in H} \frac{1}{V - 1}\sum_{v \ne i} \frac1B\sum_b -q_i^{(b)}\cdot\log p_v^{(b)}

    As lightly's ``SwaVLoss`` and SwAV's ``main_swav.py``. The codes are computed over the global batch with
    ``gather_distributed=True``; the cross-entropies are per sample, so the mean over ranks is the loss of
    one process on the global batch.

    Args:
        high_res_scores: prototype scores of the crops whose codes are computed (SwAV's
            ``crops_for_assign``, the two global crops).
        low_res_scores: prototype scores of the other crops, which only predict.
        queue_scores: per high-resolution crop, prototype scores of queued embeddings of earlier batches
            (computed with the current prototypes; see :class:`ssl_core.teacher.FeatureQueue`).
        temperature: :math:`\tau` of the prediction softmax (0.1).
        epsilon: Sinkhorn entropy weight (0.05).
        n_iters: Sinkhorn iterations (3).
        gather_distributed: codes over the batch of every rank.

    Shapes:
        - each score tensor: ``(B, K)``; queue scores ``(Q, K)``
        - output: scalar
    """
    check_positive(temperature, "temperature")
    high, low = list(high_res_scores), list(low_res_scores)
    if not high:
        raise ValueError("swav_loss needs at least one high-resolution crop to compute codes from")
    views = high + low
    if len(views) < 2:
        raise ValueError("swav_loss needs at least two crops: codes of one are predicted from another")
    if queue_scores is not None and len(queue_scores) != len(high):
        raise ValueError(
            f"queue_scores must hold one tensor per high-resolution crop ({len(high)}), got {len(queue_scores)}"
        )
    loss = 0.0
    for i, scores in enumerate(high):
        with torch.no_grad():
            all_scores = scores if queue_scores is None else torch.cat([scores, queue_scores[i]])
            codes = sinkhorn_knopp(all_scores, epsilon, n_iters, gather_distributed)[: len(scores)]
        sub = sum(
            -(codes * F.log_softmax(v / temperature, dim=1)).sum(dim=1).mean() for j, v in enumerate(views) if j != i
        )
        loss = loss + sub / (len(views) - 1)
    return loss / len(high)


class SwAVLoss(nn.Module):
    """Module form of :func:`swav_loss`.

    Args:
        temperature: prediction temperature.
        epsilon: Sinkhorn entropy weight.
        n_iters: Sinkhorn iterations.
        gather_distributed: codes over the batch of every rank.
    """

    def __init__(
        self, temperature: float = 0.1, epsilon: float = 0.05, n_iters: int = 3, gather_distributed: bool = False
    ) -> None:
        super().__init__()
        self.temperature, self.epsilon, self.n_iters = temperature, epsilon, n_iters
        self.gather_distributed = gather_distributed

    def forward(
        self,
        high_res_scores: Sequence[torch.Tensor],
        low_res_scores: Sequence[torch.Tensor] = (),
        queue_scores: Sequence[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        return swav_loss(
            high_res_scores,
            low_res_scores,
            queue_scores,
            self.temperature,
            self.epsilon,
            self.n_iters,
            self.gather_distributed,
        )

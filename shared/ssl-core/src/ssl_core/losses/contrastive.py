"""Contrastive objectives."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.distributed import gather_with_grad, get_rank


def _check_pair(z_a: torch.Tensor, z_b: torch.Tensor) -> None:
    if z_a.ndim != 2 or z_a.shape != z_b.shape:
        raise ValueError(
            f"expected two (N, D) embeddings of the same shape, got {tuple(z_a.shape)} and {tuple(z_b.shape)}"
        )
    if z_a.shape[0] < 1:
        raise ValueError("nt_xent needs at least one pair")


def nt_xent(
    z_a: torch.Tensor, z_b: torch.Tensor, temperature: float = 0.5, gather_distributed: bool = False
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

    Shapes:
        - z_a, z_b: ``(N, D)``
        - output: scalar
    """
    _check_pair(z_a, z_b)
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    n = z_a.shape[0]
    z_a, z_b = F.normalize(z_a, dim=1), F.normalize(z_b, dim=1)
    anchors = torch.cat([z_a, z_b])  # (2n, D)
    if gather_distributed:
        g_a, g_b = gather_with_grad(z_a), gather_with_grad(z_b)
        offset = get_rank() * n  # this rank's rows among the gathered ones
    else:
        g_a, g_b, offset = z_a, z_b, 0
    big_n = g_a.shape[0]
    candidates = torch.cat([g_a, g_b])  # (2N, D)
    logits = anchors @ candidates.T / temperature  # (2n, 2N)
    local = torch.arange(n, device=z_a.device) + offset
    self_idx = torch.cat([local, local + big_n])  # where each anchor sits among the candidates
    pos_idx = torch.cat([local + big_n, local])
    rows = torch.arange(2 * n, device=z_a.device)
    logits = logits.masked_fill(
        torch.zeros_like(logits, dtype=torch.bool).index_put_((rows, self_idx), torch.tensor(True)), float("-inf")
    )
    return F.cross_entropy(logits, pos_idx)


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

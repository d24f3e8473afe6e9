"""Local-global mutual information by discrimination: the objective of Deep Graph Infomax."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def dgi_loss(
    local_real: torch.Tensor,
    local_fake: torch.Tensor,
    summary: torch.Tensor,
    index: torch.Tensor,
    weight: torch.Tensor,
) -> torch.Tensor:
    r"""Binary cross entropy of a bilinear local-global discriminator (DGI; Velickovic et al., 2019, eq. 1).

    Each local representation is scored against the summary of the sample it belongs to,
    :math:`D(h, s) = \sigma(h^\top W s)`; real locals are labelled 1 and corrupted ones 0:

    .. math::
        L = -\frac{1}{2N} \sum_{i=1}^{N} \left[\log D(h_i, s_{g(i)})
            + \log\left(1 - D(\tilde h_i, s_{g(i)})\right)\right]

    The locals are nodes and the summaries graphs in DGI (one summary per graph of a batch, the paper's
    multi-graph setting); the same form serves any local/global pair (Deep InfoMax's patches and images).
    Which corruption gives :math:`\tilde h` and how the summary is read out belong to the method. The mean
    over both terms is half of PyG's ``DeepGraphInfomax.loss`` (the sum of the two means).

    Args:
        local_real: local representations of the real samples.
        local_fake: local representations of the corrupted samples (row ``i`` scored against the same summary
            as ``local_real[i]``).
        summary: one summary vector per sample.
        index: the sample of each local representation, ``0 .. S-1``.
        weight: the bilinear form :math:`W` of the discriminator.

    Shapes:
        - local_real, local_fake: ``(N, D)``; summary: ``(S, D)``; index: ``(N,)``; weight: ``(D, D)``
        - output: scalar
    """
    if local_real.shape != local_fake.shape or local_real.ndim != 2 or len(index) != len(local_real):
        raise ValueError(
            f"dgi_loss expects real and corrupted locals of one (N, D) shape and an (N,) index, got "
            f"{tuple(local_real.shape)}, {tuple(local_fake.shape)} and {tuple(index.shape)}"
        )
    if weight.shape != (local_real.shape[1], summary.shape[-1]):
        raise ValueError(
            f"dgi_loss expects a ({local_real.shape[1]}, {summary.shape[-1]}) bilinear weight, "
            f"got {tuple(weight.shape)}"
        )
    s = summary[index]  # (N, D): each local's own summary
    pos = ((local_real @ weight) * s).sum(1)
    neg = ((local_fake @ weight) * s).sum(1)
    logits = torch.cat([pos, neg])
    labels = torch.cat([torch.ones_like(pos), torch.zeros_like(neg)])
    return F.binary_cross_entropy_with_logits(logits, labels)


class DGILoss(nn.Module):
    """Module form of :func:`dgi_loss`; the bilinear ``weight`` stays a parameter of the method."""

    def forward(
        self,
        local_real: torch.Tensor,
        local_fake: torch.Tensor,
        summary: torch.Tensor,
        index: torch.Tensor,
        weight: torch.Tensor,
    ) -> torch.Tensor:
        return dgi_loss(local_real, local_fake, summary, index, weight)

"""Triplet margin loss on similarity queries (SIRL)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.errors import ConfigError


def triplet(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    margin: float = 1.0,
    squared: bool = False,
    eps: float = 1e-6,
) -> torch.Tensor:
    r"""Triplet margin loss (Schroff et al., 2015, eq. 1), as SIRL trains on similarity queries
    (Bobu et al., 2023: a person says which of two behaviours is more like a third).

    .. math:: L = \frac1N \sum_i \max\big(0,\ d(a_i, p_i) - d(a_i, n_i) + m\big)

    with the Euclidean distance :math:`d`, or its square with ``squared=True`` (FaceNet). Each triplet is
    answered by one query, so no sample is compared with the rest of the batch and nothing is gathered.
    With ``squared=False`` it equals ``torch.nn.functional.triplet_margin_loss`` (same ``eps``).

    Args:
        anchor: embeddings of the reference behaviours.
        positive: embeddings of the behaviours judged similar to the anchor.
        negative: embeddings of the behaviours judged dissimilar.
        margin: :math:`m`.
        squared: use squared distances.
        eps: added inside the distance, as ``torch.nn.functional.pairwise_distance``.

    Shapes:
        - anchor, positive, negative: ``(N, D)``
        - output: scalar
    """
    if margin < 0:
        raise ConfigError(f"margin must not be negative, got {margin}")
    if not (anchor.shape == positive.shape == negative.shape) or anchor.ndim != 2:
        raise ValueError(
            f"triplet expects three (N, D) embeddings of one shape, got {tuple(anchor.shape)}, "
            f"{tuple(positive.shape)} and {tuple(negative.shape)}"
        )
    d_pos = F.pairwise_distance(anchor, positive, eps=eps)
    d_neg = F.pairwise_distance(anchor, negative, eps=eps)
    if squared:
        d_pos, d_neg = d_pos.pow(2), d_neg.pow(2)
    return F.relu(d_pos - d_neg + margin).mean()


class TripletLoss(nn.Module):
    """Module form of :func:`triplet`.

    Args:
        margin: the margin.
        squared: use squared distances.
    """

    def __init__(self, margin: float = 1.0, squared: bool = False) -> None:
        super().__init__()
        self.margin, self.squared = margin, squared

    def forward(self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        return triplet(anchor, positive, negative, self.margin, self.squared)

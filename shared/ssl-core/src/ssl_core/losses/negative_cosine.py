"""Negative cosine similarity: the prediction loss of BYOL and SimSiam."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def negative_cosine(p: torch.Tensor, z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    r"""Mean negative cosine similarity between predictions and targets (SimSiam; Chen & He, 2021, eq. 1).

    .. math:: \mathcal{D}(p, z) = -\frac{1}{N}\sum_i \frac{p_i}{\lVert p_i\rVert_2}\cdot\frac{z_i}{\lVert z_i\rVert_2}

    BYOL's loss (Grill et al., 2020, eq. 2) is :math:`2 + 2\mathcal{D}`, the same gradient. The
    stop-gradient on ``z`` belongs to the method (SimSiam detaches ``z``; BYOL's ``z`` comes from the EMA
    teacher). The loss of each pair depends on no other sample, so there is nothing to gather. Same as
    lightly's ``NegativeCosineSimilarity``.

    Args:
        p: predictions of the online branch.
        z: targets.
        eps: lower bound of the norms, as in ``torch.nn.functional.cosine_similarity``.

    Shapes:
        - p, z: ``(N, D)`` (or any shape with features last)
        - output: scalar
    """
    if p.shape != z.shape:
        raise ValueError(
            f"negative_cosine expects predictions and targets of one shape, got {tuple(p.shape)} and {tuple(z.shape)}"
        )
    return -F.cosine_similarity(p, z, dim=-1, eps=eps).mean()


class NegativeCosineLoss(nn.Module):
    """Module form of :func:`negative_cosine` (BYOL, SimSiam)."""

    def forward(self, p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return negative_cosine(p, z)

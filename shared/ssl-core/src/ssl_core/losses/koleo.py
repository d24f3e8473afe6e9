"""KoLeo: the Kozachenko-Leonenko differential-entropy regulariser of DINOv2."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.losses._common import gather


def koleo(z: torch.Tensor, eps: float = 1e-8, gather_distributed: bool = False) -> torch.Tensor:
    r"""KoLeo regulariser (Sablayrolles et al., 2019, eq. 9; used by DINOv2, Oquab et al., 2023).

    On L2-normalised features, the log distance of each one to its nearest neighbour is maximised, which
    spreads the features uniformly:

    .. math:: L = -\frac{1}{N}\sum_{i} \log\big(\min_{j \ne i} \lVert z_i - z_j \rVert_2 + \epsilon\big)

    The nearest neighbour is chosen without gradient (the argmax of the cosine similarity), the distance
    is differentiated, as in DINOv2 and lightly's ``KoLeoLoss`` (whose ``eps`` inside
    ``pairwise_distance`` we keep). With ``gather_distributed=True`` neighbours are searched among the
    features of every rank; DINOv2 applies it per rank (the default here).

    Args:
        z: features (normalised here).
        eps: added to distances before the log.
        gather_distributed: look for nearest neighbours in the global batch.

    Shapes:
        - z: ``(N, D)`` with ``N >= 2`` over all ranks
        - output: scalar
    """
    if z.ndim != 2:
        raise ValueError(f"koleo expects (N, D) features, got {tuple(z.shape)}")
    z = F.normalize(z, dim=1, eps=eps)
    candidates, offset = gather(z, gather_distributed)
    if candidates.shape[0] < 2:
        raise ValueError("koleo needs at least two samples: each one's nearest neighbour is another")
    with torch.no_grad():
        sim = z @ candidates.T  # (n, N)
        rows = torch.arange(len(z), device=z.device)
        sim[rows, rows + offset] = -2.0  # never the sample itself
        nearest = sim.argmax(dim=1)
    distance = F.pairwise_distance(z, candidates[nearest], p=2, eps=eps)
    return -torch.log(distance + eps).mean()


class KoLeoLoss(nn.Module):
    """Module form of :func:`koleo`.

    Args:
        eps: added to distances before the log.
        gather_distributed: nearest neighbours in the global batch.
    """

    def __init__(self, eps: float = 1e-8, gather_distributed: bool = False) -> None:
        super().__init__()
        self.eps = eps
        self.gather_distributed = gather_distributed

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return koleo(z, self.eps, self.gather_distributed)

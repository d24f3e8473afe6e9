"""Barlow Twins: redundancy reduction on the cross-correlation of two views."""

from __future__ import annotations

import torch
from torch import nn

from ssl_core.losses._common import check_pair, gather


def _standardize(z: torch.Tensor, eps: float) -> torch.Tensor:
    # BatchNorm1d(affine=False) in training mode, as the authors' code: biased variance plus eps
    return (z - z.mean(dim=0)) / torch.sqrt(z.var(dim=0, unbiased=False) + eps)


def barlow_twins(
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    lambda_: float = 5e-3,
    gather_distributed: bool = False,
    eps: float = 1e-5,
) -> torch.Tensor:
    r"""Barlow Twins loss (Zbontar et al., 2021, eqs. 1-2).

    Both views are standardised along the batch, and their cross-correlation
    :math:`\mathcal{C} = \frac{1}{N}\, \hat z_a^\top \hat z_b` is pushed towards the identity:

    .. math:: L = \sum_i (1 - \mathcal{C}_{ii})^2 + \lambda \sum_i \sum_{j \ne i} \mathcal{C}_{ij}^2

    With ``gather_distributed=True`` both the standardisation and :math:`\mathcal{C}` use the global batch
    (gathered with :func:`ssl_core.distributed.gather_with_grad`, the equivalent of the authors'
    SyncBatchNorm plus all-reduce of :math:`\mathcal{C}`); every rank then computes the global loss, and
    the gradients equal those of one process -- not ``1 / world_size`` of them, the bug of lightly #1977.

    Args:
        z_a: projections of the first view.
        z_b: projections of the second view.
        lambda_: :math:`\lambda`, weight of the redundancy term (paper: 5e-3 for 8192 dims).
        gather_distributed: use the batch of every rank.
        eps: added to the variance in the standardisation (BatchNorm's default).

    Shapes:
        - z_a, z_b: ``(N, D)`` with ``N >= 2`` over all ranks
        - output: scalar
    """
    check_pair(z_a, z_b, "barlow_twins")
    z_a, _ = gather(z_a, gather_distributed)
    z_b, _ = gather(z_b, gather_distributed)
    if z_a.shape[0] < 2:
        raise ValueError("barlow_twins standardises along the batch and needs at least two samples")
    c = _standardize(z_a, eps).T @ _standardize(z_b, eps) / z_a.shape[0]  # (D, D)
    on_diag = (torch.diagonal(c) - 1).pow(2).sum()
    off_diag = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    return on_diag + lambda_ * off_diag


class BarlowTwinsLoss(nn.Module):
    """Module form of :func:`barlow_twins`.

    Args:
        lambda_: weight of the redundancy-reduction term.
        gather_distributed: use the batch of every rank.
    """

    def __init__(self, lambda_: float = 5e-3, gather_distributed: bool = False) -> None:
        super().__init__()
        self.lambda_ = lambda_
        self.gather_distributed = gather_distributed

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        return barlow_twins(z_a, z_b, self.lambda_, self.gather_distributed)

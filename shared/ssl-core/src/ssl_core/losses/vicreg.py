"""VICReg: variance, invariance and covariance regularisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.losses._common import check_pair, gather


def _variance(z: torch.Tensor, eps: float) -> torch.Tensor:
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(1 - std).mean()


def _covariance(z: torch.Tensor) -> torch.Tensor:
    n, d = z.shape
    z = z - z.mean(dim=0)
    cov = z.T @ z / (n - 1)  # (D, D)
    return (cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()) / d


def vicreg(
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    sim_coeff: float = 25.0,
    std_coeff: float = 25.0,
    cov_coeff: float = 1.0,
    gather_distributed: bool = False,
    eps: float = 1e-4,
) -> torch.Tensor:
    r"""VICReg loss (Bardes et al., 2022, eqs. 1-6).

    .. math::
        L = \lambda\, s(Z, Z') + \mu\,\tfrac12[v(Z) + v(Z')] + \nu\,[c(Z) + c(Z')]

    with the invariance :math:`s = \frac1N\sum_i \lVert z_i - z'_i\rVert^2 / D` (mean squared error), the
    variance hinge :math:`v(Z) = \frac1D\sum_j \max(0, 1 - \sqrt{\mathrm{Var}(z^j) + \epsilon})` and the
    covariance penalty :math:`c(Z) = \frac1D\sum_{i\ne j} C(Z)_{ij}^2` (unbiased covariance). The ``1/2``
    on the variance term follows the authors' code (and lightly's ``VICRegLoss``).

    With ``gather_distributed=True`` the variance and covariance use the global batch (the authors'
    ``FullGatherLayer``) while the invariance stays a mean over local pairs; averaged over ranks this is
    the loss of one process on the global batch.

    Args:
        z_a: expansions of the first view.
        z_b: expansions of the second view.
        sim_coeff: :math:`\lambda` (paper: 25).
        std_coeff: :math:`\mu` (paper: 25).
        cov_coeff: :math:`\nu` (paper: 1).
        gather_distributed: variance and covariance over every rank's batch.
        eps: :math:`\epsilon` inside the square root (paper: 1e-4).

    Shapes:
        - z_a, z_b: ``(N, D)`` with ``N >= 2`` over all ranks
        - output: scalar
    """
    check_pair(z_a, z_b, "vicreg")
    invariance = F.mse_loss(z_a, z_b)
    z_a, _ = gather(z_a, gather_distributed)
    z_b, _ = gather(z_b, gather_distributed)
    if z_a.shape[0] < 2:
        raise ValueError("vicreg estimates variances along the batch and needs at least two samples")
    variance = 0.5 * (_variance(z_a, eps) + _variance(z_b, eps))
    covariance = _covariance(z_a) + _covariance(z_b)
    return sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance


class VICRegLoss(nn.Module):
    """Module form of :func:`vicreg`.

    Args:
        sim_coeff: weight of the invariance term.
        std_coeff: weight of the variance term.
        cov_coeff: weight of the covariance term.
        gather_distributed: variance and covariance over every rank's batch.
    """

    def __init__(
        self, sim_coeff: float = 25.0, std_coeff: float = 25.0, cov_coeff: float = 1.0, gather_distributed: bool = False
    ) -> None:
        super().__init__()
        self.sim_coeff, self.std_coeff, self.cov_coeff = sim_coeff, std_coeff, cov_coeff
        self.gather_distributed = gather_distributed

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        return vicreg(z_a, z_b, self.sim_coeff, self.std_coeff, self.cov_coeff, self.gather_distributed)

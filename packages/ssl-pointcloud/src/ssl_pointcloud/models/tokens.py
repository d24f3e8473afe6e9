"""Point groups as tokens: farthest-point-sampled centres, their k nearest points, and a mini-PointNet that
turns each group into one vector (Point-BERT / Point-MAE's tokenizer; Yu et al., 2022; Pang et al., 2022)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ssl_core.errors import ConfigError
from ssl_core.kernels import farthest_point_sampling, knn


def group_points(
    points: torch.Tensor, num_groups: int, group_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cut each cloud into ``num_groups`` overlapping groups of ``group_size`` points.

    The centres are chosen by farthest point sampling (from point 0) and each group holds the ``group_size``
    points nearest its centre (the centre included), expressed relative to it, as in Point-MAE.

    Args:
        points: clouds.
        num_groups: groups per cloud (``G``), at most ``N``.
        group_size: points per group (``K``), at most ``N``.

    Raises:
        ConfigError: when a cloud has fewer points than ``num_groups`` or ``group_size``, naming both and the
            setting to lower.

    Shapes:
        - points: ``(B, N, 3)``
        - output: centres ``(B, G, 3)``, neighbourhoods ``(B, G, K, 3)`` (relative to their centre), indices
          ``(B, G, K)`` into ``points``
    """
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must be (B, N, 3) clouds, got shape {tuple(points.shape)}")
    n = points.shape[1]
    if n < max(num_groups, group_size):
        raise ConfigError(
            f"clouds of {n} points cannot make {num_groups} groups of {group_size} points; load more points per "
            "cloud (data.num_points) or lower backbone.num_groups / backbone.group_size"
        )
    with torch.no_grad():
        centre_idx = farthest_point_sampling(points.detach(), num_groups)  # (B, G)
    clouds = torch.arange(points.shape[0], device=points.device)[:, None]
    centres = points[clouds, centre_idx]  # (B, G, 3)
    _, idx = knn(centres.detach(), points.detach(), group_size)  # (B, G, K)
    neighbourhoods = points[clouds[..., None], idx] - centres[:, :, None]
    return centres, neighbourhoods, idx


class MiniPointNet(nn.Module):
    """Point-MAE's group encoder: a shared point MLP, max-pooled per group, the pooled vector concatenated
    back to every point, a second MLP, max-pooled again.

    Args:
        out_dim: output width per group.
        dims: widths ``(first MLP hidden, first MLP out, second MLP hidden)``; Point-MAE uses
            ``(128, 256, 512)``, the default here ``(64, 128, 256)`` is lighter for CPUs.

    Shapes:
        - input: ``(B, G, K, 3)``
        - output: ``(B, G, out_dim)``
    """

    def __init__(self, out_dim: int, dims: Sequence[int] = (64, 128, 256)) -> None:
        super().__init__()
        h1, h2, h3 = dims
        self.first = nn.Sequential(nn.Linear(3, h1), nn.BatchNorm1d(h1), nn.ReLU(inplace=True), nn.Linear(h1, h2))
        self.second = nn.Sequential(
            nn.Linear(2 * h2, h3), nn.BatchNorm1d(h3), nn.ReLU(inplace=True), nn.Linear(h3, out_dim)
        )
        self.out_dim = out_dim

    @staticmethod
    def _mlp(mlp: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        # BatchNorm1d over every point of every group: flatten to (points, channels)
        return mlp(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], -1)

    def forward(self, groups: torch.Tensor) -> torch.Tensor:
        """One vector per group: ``(B, G, K, 3) -> (B, G, out_dim)``."""
        if groups.ndim != 4 or groups.shape[-1] != 3:
            raise ValueError(f"groups must be (B, G, K, 3), got shape {tuple(groups.shape)}")
        f = self._mlp(self.first, groups)  # (B, G, K, h2)
        pooled = f.max(dim=2, keepdim=True).values  # (B, G, 1, h2)
        # Linear([pooled, f]) = W_pooled pooled + W_point f + b: the pooled half once per group, not per point
        # (the same values as concatenating, without the (B, G, K, 2 h2) tensor and a quarter of the products)
        lin = self.second[0]
        w_pooled, w_point = lin.weight.split(f.shape[-1], dim=1)
        h = torch.addmm(lin.bias, f.reshape(-1, f.shape[-1]), w_point.T).reshape(*f.shape[:-1], -1)
        h = h + pooled @ w_pooled.T
        return self._mlp(self.second[1:], h).max(dim=2).values

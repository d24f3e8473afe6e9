"""A small point-wise encoder for dense tasks (segmentation, correspondences): DGCNN's edge convolutions
(Wang et al., 2019, "Dynamic Graph CNN for Learning on Point Clouds") on a fixed kNN graph of the input
coordinates (DGCNN recomputes the graph in feature space at every layer; a fixed graph keeps one kNN search
per cloud, ``ssl_core.kernels.knn``).

Each edge conv maps every edge ``(x_i, x_j - x_i)`` of point ``i`` to its ``k`` neighbours through a shared
MLP and max-pools over the neighbours; the outputs of all layers are concatenated with a global max-pooled
vector and mixed per point into ``width`` features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ssl_core.errors import ConfigError
from ssl_core.kernels import knn


@dataclass
class PointwiseConfig:
    """Shape of a :class:`PointwiseEncoder` (``--set method.backbone.<name>=<value>``).

    Args:
        k: neighbours per point in the graph (16; DGCNN uses 20).
        dims: output width of each edge convolution (64, 64, 128).
        width: per-point feature width (128).
    """

    k: int = 16
    dims: tuple[int, ...] = (64, 64, 128)
    width: int = 128

    def __post_init__(self) -> None:
        self.dims = tuple(self.dims)
        if self.k < 1 or not self.dims or min(self.dims) < 1 or self.width < 1:
            raise ConfigError(f"k, width and every dims entry must be >= 1, got k={self.k}, dims={self.dims}")


class EdgeConv(nn.Module):
    """``h_i = max_j MLP([x_i, x_j - x_i])`` over the neighbours ``j`` of point ``i``.

    Shapes:
        - x: ``(B, N, C)``; idx: ``(B, N, k)`` neighbour indices; output ``(B, N, out_dim)``
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(2 * in_dim, out_dim, bias=False)
        self.norm = nn.BatchNorm1d(out_dim)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Edge features of every point max-pooled over its neighbours ``idx``."""
        b, n, k = idx.shape
        # W [x_i, x_j - x_i] = (W_1 - W_2) x_i + W_2 x_j: project the N points, then gather (k times fewer products)
        w_centre, w_edge = self.linear.weight.chunk(2, dim=1)
        centre = x @ (w_centre - w_edge).T  # (B, N, out)
        clouds = torch.arange(b, device=x.device)[:, None, None]
        edges = centre[:, :, None] + (x @ w_edge.T)[clouds, idx]  # (B, N, k, out)
        edges = self.act(self.norm(edges.reshape(-1, edges.shape[-1]))).reshape(b, n, k, -1)
        return edges.max(dim=2).values


def check_neighbourhood(points: torch.Tensor, k: int) -> None:
    """Refuse anything but ``(B, N, 3)`` clouds of at least ``k`` points (a point-wise encoder's kNN graph)."""
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must be (B, N, 3) clouds, got shape {tuple(points.shape)}")
    if points.shape[1] < k:
        raise ConfigError(
            f"clouds of {points.shape[1]} points have fewer than k={k} neighbours per point; load more points "
            "(data.num_points) or lower backbone.k"
        )


def mix_layers(outs: list[torch.Tensor], mix: nn.Module, out: nn.Module) -> torch.Tensor:
    """DGCNN's head: the layers' outputs concatenated with their max over the cloud, mixed per point by ``mix``
    (on ``(B * N, 2 * C)``) and ``out``: ``[(B, N, C_i)] -> (B, N, width)``."""
    local = torch.cat(outs, dim=-1)  # (B, N, C)
    glob = local.max(dim=1, keepdim=True).values.expand_as(local)
    h = mix(torch.cat([local, glob], dim=-1).reshape(-1, 2 * local.shape[-1]))
    return out(h).reshape(local.shape[0], local.shape[1], -1)


def pool_points(features: torch.Tensor) -> torch.Tensor:
    """The global embedding of point features: their max and mean over the points, ``(B, N, C) -> (B, 2C)``."""
    return torch.cat([features.max(dim=1).values, features.mean(dim=1)], dim=-1)


class PointwiseEncoder(nn.Module):
    """Per-point features from edge convolutions (see the module docstring).

    Shapes:
        - :meth:`point_features`: ``(B, N, 3) -> (B, N, width)``
        - :meth:`forward`: ``(B, N, 3) -> (B, embed_dim)``, ``embed_dim = 2 * width`` (max and mean over points)
    """

    def __init__(self, config: PointwiseConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or PointwiseConfig()
        self.width = c.width
        self.embed_dim = 2 * c.width
        dims: Sequence[int] = (3, *c.dims)
        self.convs = nn.ModuleList(EdgeConv(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        total = sum(c.dims)
        self.mix = nn.Sequential(
            nn.Linear(2 * total, c.width, bias=False), nn.BatchNorm1d(c.width), nn.LeakyReLU(0.2, inplace=True)
        )
        self.out = nn.Linear(c.width, c.width)

    def graph(self, points: torch.Tensor) -> torch.Tensor:
        """The kNN graph: ``(B, N, 3) -> (B, N, k)`` indices (each point's own index first)."""
        check_neighbourhood(points, self.config.k)
        with torch.no_grad():
            return knn(points.detach(), points.detach(), self.config.k)[1]

    def point_features(self, points: torch.Tensor) -> torch.Tensor:
        """Per-point features: ``(B, N, 3) -> (B, N, width)``."""
        idx = self.graph(points)
        x, outs = points, []
        for conv in self.convs:
            x = conv(x, idx)
            outs.append(x)
        return mix_layers(outs, self.mix, self.out)

    def tokens(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every point is a token: ``(B, N, 3) -> (points (B, N, 3), features (B, N, width))``."""
        return points, self.point_features(points)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """The global embedding: ``(B, N, 3) -> (B, 2 * width)`` (max and mean of the point features)."""
        return pool_points(self.point_features(points))


def build_pointwise(config: dict[str, Any]) -> PointwiseEncoder:
    """Builder for ``modality.backbones["pointwise"]``: ``config`` holds :class:`PointwiseConfig`'s fields."""
    return PointwiseEncoder(PointwiseConfig(**config))

"""A rotation-invariant point-wise encoder: per-point features computed from inputs that no rotation or
translation of the cloud changes (point-pair features of each point with its kNN neighbours, as PPFNet; Deng,
Birdal, Ilic, 2018), the backbone of self-supervised registration (:mod:`ssl_pointcloud.registration`).
An xyz network (DGCNN, :class:`~ssl_pointcloud.models.pointwise.PointwiseEncoder`) has to learn rotation
invariance from augmentations, which a CPU budget of minutes does not buy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ssl_core.errors import ConfigError
from ssl_pointcloud.geometry import local_covariance
from ssl_pointcloud.models.pointwise import check_neighbourhood, mix_layers, pool_points

BACKBONE_NAME = "invariant_pointwise"


def local_geometry(points: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rotation-invariant inputs of every point and edge of the kNN graph (no gradient: they are inputs).

    Per point (5): distance to the centroid ``|r_i|``, ``n_i . r_i / |r_i|``, and the three PCA eigenvalues of the
    neighbourhood divided by their sum. Per edge ``i -> j`` (5): ``|d|``, ``n_i . d/|d|``, ``n_j . d/|d|``,
    ``n_i . n_j`` and ``|r_j| - |r_i|`` with ``d = x_j - x_i`` (point-pair features, Drost et al., 2010). The
    normal ``n_i`` (smallest PCA axis of the ``k`` neighbours) is oriented away from the centroid, so all of these
    are unchanged by any rotation and translation of the cloud.

    Shapes:
        - points: ``(B, N, 3)``
        - output: ``idx (B, N, k)`` (each point first), ``point_feats (B, N, 5)``, ``edge_feats (B, N, k, 5)``
    """
    with torch.no_grad():
        pts = points.detach().float()
        b, n, _ = pts.shape
        cov, idx = local_covariance(pts, k)  # (B, N, 3, 3) float64, (B, N, k)
        clouds = torch.arange(b, device=pts.device)[:, None, None]
        nb = pts[clouds, idx]  # (B, N, k, 3)
        evals, evecs = torch.linalg.eigh(cov)
        evals, evecs = evals.float().clamp_min(0), evecs.float()
        normal = evecs[..., 0]  # smallest eigenvalue's axis
        r = pts - pts.mean(dim=1, keepdim=True)
        sign = torch.sign((normal * r).sum(-1, keepdim=True))
        normal = normal * torch.where(sign == 0, torch.ones_like(sign), sign)
        rn = r.norm(dim=-1, keepdim=True)
        shape = evals / (evals.sum(-1, keepdim=True) + 1e-12)
        point_feats = torch.cat([rn, (normal * r).sum(-1, keepdim=True) / (rn + 1e-9), shape], dim=-1)
        d = nb - pts[:, :, None]
        dn = d.norm(dim=-1, keepdim=True)
        du = d / (dn + 1e-9)
        nj = normal[clouds, idx]
        edge_feats = torch.cat(
            [
                dn,
                (normal[:, :, None] * du).sum(-1, keepdim=True),
                (nj * du).sum(-1, keepdim=True),
                (normal[:, :, None] * nj).sum(-1, keepdim=True),
                rn[clouds, idx] - rn[:, :, None],
            ],
            dim=-1,
        )
    return idx, point_feats.to(points.dtype), edge_feats.to(points.dtype)


@dataclass
class InvariantConfig:
    """Shape of an :class:`InvariantPointEncoder` (``--set method.backbone.<name>=<value>``).

    Args:
        k: neighbours per point (graph and PCA normals), 16.
        dims: output width of each layer (32, 64, 64).
        width: per-point feature width (64).
        embed_points: the global embedding (:meth:`InvariantPointEncoder.forward`) reads every ``s``-th point,
            ``s = N // embed_points``, so that its kNN neighbourhoods have the density the features were trained
            at (the points of a cloud come in random order: a random subset); ``None``: every point.
    """

    k: int = 16
    dims: tuple[int, ...] = (32, 64, 64)
    width: int = 64
    embed_points: int | None = None

    def __post_init__(self) -> None:
        self.dims = tuple(self.dims)
        if self.k < 3 or not self.dims or min(self.dims) < 1 or self.width < 1:
            raise ConfigError(f"k must be >= 3 and width, dims >= 1, got k={self.k}, dims={self.dims}")


def gather_neighbours(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``x[b, idx[b, i, j]]``: ``(B, N, C)``, ``(B, N, k)`` -> ``(B, N, k, C)`` (``gather``, whose backward is a
    scatter-add, cheaper on CPU than advanced indexing's ``index_put``)."""
    b, n, k = idx.shape
    flat = idx.reshape(b, n * k, 1).expand(-1, -1, x.shape[-1])
    return x.gather(1, flat).reshape(b, n, k, x.shape[-1])


class PairFeatureConv(nn.Module):
    """The first layer: ``h_i = max_j act(BN(W [p_i, p_j, e_ij]))`` over the neighbours ``j`` of ``i``, on the
    invariant point features ``p`` and edge features ``e`` of :func:`local_geometry` (a PointNet on point-pair
    features, as PPFNet).

    Shapes:
        - p: ``(B, N, P)``; idx: ``(B, N, k)``; edge: ``(B, N, k, E)``; output ``(B, N, out_dim)``
    """

    def __init__(self, point_dim: int, edge_dim: int, out_dim: int) -> None:
        super().__init__()
        self.centre = nn.Linear(point_dim, out_dim, bias=False)
        self.neighbour = nn.Linear(point_dim, out_dim, bias=False)
        self.edge = nn.Linear(edge_dim, out_dim, bias=False)
        self.norm = nn.BatchNorm1d(out_dim)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, p: torch.Tensor, idx: torch.Tensor, edge: torch.Tensor) -> torch.Tensor:
        b, n, k = idx.shape
        x = self.centre(p)[:, :, None] + gather_neighbours(self.neighbour(p), idx) + self.edge(edge)
        x = self.act(self.norm(x.reshape(-1, x.shape[-1]))).reshape(b, n, k, -1)
        return x.max(dim=2).values


class NeighbourMaxConv(nn.Module):
    """Later layers: ``h'_i = act(BN(A h_i + max_j B h_j))`` over the neighbours ``j`` of ``i`` (normalised per
    point, not per edge: ``k`` times cheaper than an edge convolution).

    Shapes:
        - h: ``(B, N, C)``; idx: ``(B, N, k)``; output ``(B, N, out_dim)``
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.centre = nn.Linear(in_dim, out_dim, bias=False)
        self.neighbour = nn.Linear(in_dim, out_dim, bias=False)
        self.norm = nn.BatchNorm1d(out_dim)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, h: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        x = self.centre(h) + gather_neighbours(self.neighbour(h), idx).max(dim=2).values
        return self.act(self.norm(x.reshape(-1, x.shape[-1]))).reshape(x.shape)


class InvariantPointEncoder(nn.Module):
    """Per-point features that do not change under rotations and translations of the input cloud: a PointNet on
    the invariant point-pair features of :func:`local_geometry` (:class:`PairFeatureConv`), then
    :class:`NeighbourMaxConv` layers over the same kNN graph, all their outputs concatenated with a global
    max-pooled vector and mixed per point.

    Shapes:
        - :meth:`point_features`: ``(B, N, 3) -> (B, N, width)``
        - :meth:`forward`: ``(B, N, 3) -> (B, 2 * width)`` (max and mean over the points, or over every ``s``-th
          point with ``embed_points``)
    """

    def __init__(self, config: InvariantConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or InvariantConfig()
        self.width = c.width
        self.embed_dim = 2 * c.width
        self.first = PairFeatureConv(5, 5, c.dims[0])
        self.convs = nn.ModuleList(NeighbourMaxConv(a, o) for a, o in zip(c.dims[:-1], c.dims[1:], strict=True))
        total = sum(c.dims)
        self.mix = nn.Sequential(nn.Linear(2 * total, c.width, bias=False), nn.BatchNorm1d(c.width), nn.LeakyReLU(0.2))
        self.out = nn.Linear(c.width, c.width)

    def point_features(self, points: torch.Tensor) -> torch.Tensor:
        """Invariant per-point features ``(B, N, 3) -> (B, N, width)``."""
        check_neighbourhood(points, self.config.k)
        idx, p, edge = local_geometry(points, self.config.k)
        h = self.first(p, idx, edge)
        outs = [h]
        for conv in self.convs:
            h = conv(h, idx)
            outs.append(h)
        return mix_layers(outs, self.mix, self.out)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        if self.config.embed_points:
            points = points[:, :: max(1, points.shape[1] // self.config.embed_points)]
        return pool_points(self.point_features(points))


def build_invariant_pointwise(config: dict[str, Any]) -> InvariantPointEncoder:
    """Builder for ``modality.backbones["invariant_pointwise"]``: ``config`` holds :class:`InvariantConfig`'s
    fields."""
    return InvariantPointEncoder(InvariantConfig(**config))

"""Projection heads."""

from __future__ import annotations

from torch import nn


def projection_mlp(
    in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2, last_bn: bool = False
) -> nn.Sequential:
    """MLP head ``Linear -> BN -> ReLU`` repeated, then a final ``Linear`` (SimCLR: 2 layers; SimCLR v2,
    MoCo v3, BYOL: 3 layers / batch-normalised output).

    Shapes:
        - input: ``(B, in_dim)``; output: ``(B, out_dim)``
    """
    if num_layers < 1:
        raise ValueError("num_layers must be at least 1")
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(num_layers - 1):
        layers += [nn.Linear(d, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)]
        d = hidden_dim
    layers.append(nn.Linear(d, out_dim, bias=not last_bn))
    if last_bn:
        layers.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*layers)

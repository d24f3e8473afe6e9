"""Projection heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def projection_mlp(
    in_dim: int,
    hidden_dim: int,
    out_dim: int,
    num_layers: int = 2,
    last_bn: bool = False,
    batch_norm: bool = True,
    last_bn_affine: bool = False,
) -> nn.Sequential:
    """MLP head ``Linear -> BN -> ReLU`` repeated, then a final ``Linear`` (SimCLR: 2 layers; SimCLR v2,
    MoCo v3, BYOL: 3 layers / batch-normalised output).

    Args:
        in_dim, hidden_dim, out_dim: widths of the input, the hidden layers and the output.
        num_layers: linear layers (at least 1).
        last_bn: batch-normalise the output (SimSiam, MoCo v3's projector, NNCLR).
        batch_norm: batch-normalise the hidden layers (MoCo v2's head has no BatchNorm).
        last_bn_affine: give the output BatchNorm a learned scale and shift (SimSiam / MoCo v3: no).

    Shapes:
        - input: ``(B, in_dim)``; output: ``(B, out_dim)``
    """
    if num_layers < 1:
        raise ValueError("num_layers must be at least 1")
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(num_layers - 1):
        if batch_norm:  # a bias before BatchNorm is redundant
            layers += [nn.Linear(d, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim)]
        else:
            layers.append(nn.Linear(d, hidden_dim))
        layers.append(nn.ReLU(inplace=True))
        d = hidden_dim
    layers.append(nn.Linear(d, out_dim, bias=not last_bn))
    if last_bn:
        layers.append(nn.BatchNorm1d(out_dim, affine=last_bn_affine))
    return nn.Sequential(*layers)


class DINOHead(nn.Module):
    """DINO's projection head (Caron et al., 2021, Sec. 3 and App.): an MLP with GELU, an L2-normalised
    bottleneck, and a weight-normalised linear layer to ``out_dim`` prototypes whose norm is fixed to 1
    (``norm_last_layer=True``), written out as ``x @ normalize(W).T``.

    Args:
        in_dim: the backbone's embedding size.
        hidden_dim: width of the hidden layers (2048 in the paper).
        bottleneck_dim: size of the normalised bottleneck (256).
        out_dim: number of prototypes ``K`` (65536 on ImageNet).
        num_layers: linear layers of the MLP before the bottleneck normalisation (3).

    Shapes:
        - input: ``(B, in_dim)``; output: ``(B, out_dim)``
    """

    def __init__(self, in_dim: int, hidden_dim: int, bottleneck_dim: int, out_dim: int, num_layers: int = 3) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1)
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            layers += [nn.Linear(a, b), nn.GELU()]
        layers.append(nn.Linear(dims[-1], bottleneck_dim))
        self.mlp = nn.Sequential(*layers)
        self.last_weight = nn.Parameter(torch.empty(out_dim, bottleneck_dim))
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.last_weight, std=0.02)

    def forward(self, x: torch.Tensor, freeze_last_layer: bool = False) -> torch.Tensor:
        """Prototype scores; ``freeze_last_layer`` stops the gradient into the prototypes (DINO freezes them
        during the first epoch, which stabilises the start)."""
        x = F.normalize(self.mlp(x), dim=-1)  # (B, bottleneck_dim) on the unit sphere
        w = F.normalize(self.last_weight, dim=1)  # weight norm with the gain fixed to 1
        return F.linear(x, w.detach() if freeze_last_layer else w)  # (B, out_dim)

"""Point-MAE's transformer encoder over point-group tokens (Pang et al., 2022, "Masked Autoencoders for Point
Cloud Self-supervised Learning").

A cloud is cut into ``num_groups`` groups (:func:`~ssl_pointcloud.models.tokens.group_points`), each group
becomes a token (:class:`~ssl_pointcloud.models.tokens.MiniPointNet`), each centre a position embedding
(a 3 -> 128 -> width MLP), and pre-norm transformer blocks follow, with the positions added again before every
block as in Point-MAE. The global embedding is Point-MAE's classification feature: the max and the mean of the
final tokens, concatenated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ssl_core.errors import ConfigError
from ssl_core.method import BackboneSpec
from ssl_pointcloud.info import PointInfo
from ssl_pointcloud.models.tokens import MiniPointNet, group_points


@dataclass
class PointTransformerConfig:
    """Shape of a :class:`PointTransformer` (``--set method.backbone.<name>=<value>``).

    Args:
        num_groups: tokens per cloud (64, Point-MAE's for 1,024 points).
        group_size: points per group (32, Point-MAE's).
        width: token width (192; Point-MAE uses 384).
        depth: transformer blocks (4; Point-MAE uses 12).
        heads: attention heads (4; Point-MAE uses 6).
        mlp_ratio: hidden width of each block's MLP relative to ``width``.
        pointnet_dims: the mini-PointNet's hidden widths (Point-MAE: 128, 256, 512).
        drop_path: stochastic depth rate of the last block (linearly from 0; Point-MAE uses 0.1).
    """

    num_groups: int = 64
    group_size: int = 32
    width: int = 192
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    pointnet_dims: tuple[int, int, int] = (64, 128, 256)
    drop_path: float = 0.0

    def __post_init__(self) -> None:
        self.pointnet_dims = tuple(self.pointnet_dims)
        if self.width % self.heads:
            raise ConfigError(f"width ({self.width}) must be divisible by heads ({self.heads})")
        if min(self.num_groups, self.group_size, self.depth, self.heads) < 1:
            raise ConfigError("num_groups, group_size, depth and heads must be >= 1")
        if len(self.pointnet_dims) != 3:
            raise ConfigError(f"pointnet_dims needs three widths, got {self.pointnet_dims}")


class _Block(nn.Module):
    """Pre-norm transformer block with stochastic depth on both residual branches."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))
        self.drop_path = drop_path

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_path == 0.0:
            return x
        keep = torch.rand(x.shape[0], 1, 1, device=x.device) >= self.drop_path
        return x * keep / (1.0 - self.drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self._drop(self.attn(h, h, h, need_weights=False)[0])
        return x + self._drop(self.mlp(self.norm2(x)))


class TransformerStack(nn.Module):
    """Blocks with the positions added before each (Point-MAE's encoder and decoder), then a final LayerNorm.

    Shapes:
        - tokens, pos: ``(B, L, width)``; output ``(B, L, width)``
    """

    def __init__(self, width: int, depth: int, heads: int, mlp_ratio: float = 4.0, drop_path: float = 0.0) -> None:
        super().__init__()
        rates = [drop_path * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(_Block(width, heads, mlp_ratio, r) for r in rates)
        self.norm = nn.LayerNorm(width, eps=1e-6)

    def forward(self, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            tokens = block(tokens + pos)
        return self.norm(tokens)


def position_mlp(width: int) -> nn.Sequential:
    """Point-MAE's position embedding of group centres: Linear(3, 128) -> GELU -> Linear(128, width)."""
    return nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, width))


class PointTransformer(nn.Module):
    """Point-MAE's encoder (see the module docstring).

    Shapes:
        - :meth:`group`: ``(B, N, 3) -> centres (B, G, 3), neighbourhoods (B, G, K, 3)``
        - :meth:`embed_groups`: ``(B, g, K, 3), (B, g, 3) -> tokens, pos (B, g, width)`` (any subset of groups)
        - :meth:`encode`: ``(B, g, width), (B, g, width) -> (B, g, width)``
        - :meth:`tokens`: ``(B, N, 3) -> centres (B, G, 3), features (B, G, width)``
        - :meth:`forward`: ``(B, N, 3) -> (B, embed_dim)``, ``embed_dim = 2 * width`` (max and mean of the tokens)
    """

    def __init__(self, config: PointTransformerConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or PointTransformerConfig()
        self.width = c.width
        self.embed_dim = 2 * c.width
        self.group_encoder = MiniPointNet(c.width, c.pointnet_dims)
        self.pos_embed = position_mlp(c.width)
        self.encoder = TransformerStack(c.width, c.depth, c.heads, c.mlp_ratio, c.drop_path)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def group(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Centres ``(B, G, 3)`` and neighbourhoods ``(B, G, K, 3)`` (relative to their centre) of ``(B, N, 3)``."""
        centres, neighbourhoods, _ = group_points(points, self.config.num_groups, self.config.group_size)
        return centres, neighbourhoods

    def embed_groups(self, neighbourhoods: torch.Tensor, centres: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens (mini-PointNet) and position embeddings of any subset of groups: ``(B, g, K, 3), (B, g, 3) ->
        (B, g, width), (B, g, width)``."""
        return self.group_encoder(neighbourhoods), self.pos_embed(centres)

    def encode(self, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """The transformer blocks (positions added before each) and the final LayerNorm: ``(B, g, width)``."""
        return self.encoder(tokens, pos)

    def tokens(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every group encoded: ``(B, N, 3) -> centres (B, G, 3), features (B, G, width)``."""
        centres, neighbourhoods = self.group(points)
        return centres, self.encode(*self.embed_groups(neighbourhoods, centres))

    @staticmethod
    def pool(features: torch.Tensor) -> torch.Tensor:
        """Point-MAE's global feature: ``(B, G, width) -> (B, 2 * width)``, max then mean over the tokens."""
        return torch.cat([features.max(dim=1).values, features.mean(dim=1)], dim=-1)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """The global embedding: ``(B, N, 3) -> (B, 2 * width)``."""
        return self.pool(self.tokens(points)[1])


def build_point_transformer(config: dict[str, Any]) -> PointTransformer:
    """Builder for ``modality.backbones["point_transformer"]``: ``config`` holds
    :class:`PointTransformerConfig`'s fields."""
    return PointTransformer(PointTransformerConfig(**config))


def backbone_spec(backbone: nn.Module, info: PointInfo) -> BackboneSpec:
    """The :class:`~ssl_core.method.BackboneSpec` of a point-cloud backbone of this package (name, rebuild
    config, input)."""
    from ssl_pointcloud.models.pointwise import PointwiseEncoder

    name = "pointwise" if isinstance(backbone, PointwiseEncoder) else "point_transformer"
    return BackboneSpec(
        name=name,
        config=dataclasses.asdict(backbone.config),
        embed_dim=backbone.embed_dim,
        input=info.backbone_input(),
    )

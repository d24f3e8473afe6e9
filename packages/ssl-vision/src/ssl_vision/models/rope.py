"""A Vision Transformer with 2-D rotary position embeddings (RoPE-2D), as CroCo v2's encoder and decoder.

RoPE (Su et al., 2021, "RoFormer") rotates each query and key by an angle proportional to its token's position
before the dot product, so the attention score of two tokens depends on their contents and on the *offset*
between their positions only. CroCo v2 (Weinzaepfel et al., 2022, "Improved Cross-view Completion
Pre-training for Stereo Matching and Optical Flow", Sec. 3) uses it in 2-D instead of absolute sine-cosine
embeddings: as ``RoPE2D`` of github:naver/croco ``models/pos_embed.py``, the channels of each head are split
into two halves, the first rotated by the token's row ``y``, the second by its column ``x``; within a half of
``D`` channels, channel ``k`` and channel ``k + D/2`` (``k < D/2``) form one rotated pair with frequency
``base^(-2k/D)`` (``base = 100``, CroCo's "RoPE100").

Nothing is added to the tokens: the blocks get the positions. The class token (kept so that the backbone has
the interface of :class:`~ssl_vision.models.vit.ViT`) has no position and is not rotated.

The rotations are computed once per forward pass (:func:`rope_2d_tables`) and applied in every block.
Pieces shared with CroCo's decoder: :class:`Attention` (self- or cross-attention, with or without RoPE),
:class:`Block` (pre-norm transformer block) and :class:`CrossBlock` (CroCo's ``DecoderBlock``: self-attention,
cross-attention to a second token set, MLP).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.errors import ConfigError
from ssl_vision.models.vit import PatchStem, ViTConfig


@dataclass
class RoPEViTConfig(ViTConfig):
    """Shape of a :class:`RoPEViT`: the fields of :class:`~ssl_vision.models.vit.ViTConfig` and the RoPE base.

    Args:
        rope_base: the base of the rotation frequencies ``base^(-2k/D)`` (CroCo v2's ``RoPE100``: 100).
    """

    rope_base: float = 100.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rope_base <= 1:
            raise ConfigError(f"rope_base must be > 1, got {self.rope_base}")
        if (self.dim // self.heads) % 4:
            raise ConfigError(f"2-D RoPE needs a head width divisible by 4, got {self.dim // self.heads}")


def grid_positions(grid: int, span: int | None = None) -> torch.Tensor:
    """The ``(row, column)`` positions of a ``grid`` x ``grid`` patch grid in row-major order: ``0 .. grid - 1``,
    or spread evenly over ``[0, span - 1]`` with ``span`` (a smaller crop on the scale of the full grid, as
    :func:`~ssl_vision.models.vit.sincos_pos_embed_2d`).

    Shapes:
        - output: ``(grid * grid, 2)`` float
    """
    pos = torch.linspace(0, (span or grid) - 1, grid) if grid > 1 else torch.zeros(1)
    rows, cols = torch.meshgrid(pos, pos, indexing="ij")
    return torch.stack([rows.flatten(), cols.flatten()], dim=1)


def _rotate_halves(x: torch.Tensor) -> torch.Tensor:
    """CroCo's ``rotate_half`` on each half of the channels: ``(a, b, c, d) -> (-b, a, -d, c)`` by quarters."""
    a, b, c, d = x.chunk(4, dim=-1)
    return torch.cat([-b, a, -d, c], dim=-1)


RopeTables = tuple[torch.Tensor, torch.Tensor]


def rope_2d_tables(positions: torch.Tensor, head_dim: int, base: float = 100.0, prefix: int = 0) -> RopeTables:
    """The cosines and sines of 2-D RoPE for tokens at ``positions`` (see :func:`apply_rope_2d`), computed once
    per forward pass and shared by every block; ``prefix`` leading rows of identity rotation (``cos = 1``,
    ``sin = 0``) for tokens without a position (the class token). Angles are computed in double precision; the
    tables have the positions' floating dtype (float32 for integer positions).

    Shapes:
        - positions: ``(N, 2)`` or ``(B, N, 2)`` (row, column)
        - output: cos, sin, each ``(1 or B, 1, prefix + N, head_dim)``
    """
    if head_dim % 4:
        raise ValueError(f"2-D RoPE needs a head width divisible by 4, got {head_dim}")
    d = head_dim // 2  # channels per axis
    dtype = positions.dtype if positions.is_floating_point() else torch.float32  # the tables' dtype
    inv_freq = base ** (-torch.arange(0, d, 2, device=positions.device, dtype=torch.float64) / d)  # (d/2,)
    if positions.ndim == 2:
        positions = positions[None]
    halves = []
    for axis in range(2):
        angles = positions[..., axis].double()[..., None] * inv_freq  # (B, N, d/2), in double precision
        halves += [angles, angles]
    angles = torch.cat(halves, dim=-1)  # (B, N, head_dim): rows on the first half, columns on the second
    angles = F.pad(angles, (0, 0, prefix, 0))  # angle 0 on the prefix rows
    return angles.cos().to(dtype)[:, None], angles.sin().to(dtype)[:, None]


def rotate(x: torch.Tensor, tables: RopeTables) -> torch.Tensor:
    """Apply the rotations of :func:`rope_2d_tables` to queries or keys.

    Shapes:
        - x: ``(B, H, N, Dh)``; tables: ``(1 or B, 1, N, Dh)`` each; output: like ``x``
    """
    cos, sin = tables
    return x * cos.to(x.dtype) + _rotate_halves(x) * sin.to(x.dtype)


def apply_rope_2d(x: torch.Tensor, positions: torch.Tensor, base: float = 100.0) -> torch.Tensor:
    """Rotate queries or keys by their 2-D positions (CroCo's ``RoPE2D.forward``).

    The first half of the channels turns with the row, the second with the column; in a half of ``D``
    channels the pair ``(k, k + D/2)`` turns by ``position * base^(-2k/D)``.

    Args:
        x: queries or keys per head.
        positions: ``(row, column)`` of each token (integers or fractions).
        base: the frequency base.

    Shapes:
        - x: ``(B, H, N, Dh)`` with ``Dh`` divisible by 4
        - positions: ``(B, N, 2)`` or ``(N, 2)``
        - output: like ``x``
    """
    return rotate(x, rope_2d_tables(positions.to(x.device), x.shape[-1], base))


class Attention(nn.Module):
    """Multi-head attention of ``x`` to ``context`` (self-attention when ``context`` is ``None``), its queries and
    keys rotated by 2-D RoPE when tables are given (CroCo's ``Attention`` / ``CrossAttention``).

    Args:
        dim: token width.
        heads: attention heads.

    Shapes:
        - x: ``(B, N, dim)``; rope: tables of :func:`rope_2d_tables` for ``N`` tokens, or ``None``
        - context: ``(B, M, dim)``; context_rope: tables for ``M`` tokens, or ``None``
        - output: ``(B, N, dim)``
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ConfigError(f"attention width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        b, n, d = t.shape
        return t.reshape(b, n, self.heads, d // self.heads).transpose(1, 2)  # (B, H, n, Dh)

    def forward(
        self,
        x: torch.Tensor,
        rope: RopeTables | None = None,
        context: torch.Tensor | None = None,
        context_rope: RopeTables | None = None,
    ) -> torch.Tensor:
        if context is None:
            context, context_rope = x, rope
        q = self._split(self.q(x))
        k, v = (self._split(t) for t in self.kv(context).chunk(2, dim=-1))
        if rope is not None:
            q = rotate(q, rope)
        if context_rope is not None:
            k = rotate(k, context_rope)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, Dh)
        return self.proj(out.transpose(1, 2).flatten(2))


class Mlp(nn.Sequential):
    """The blocks' GELU MLP: ``dim -> hidden -> dim``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class Block(nn.Module):
    """Pre-norm transformer block: LN -> self-attention (RoPE when tables are given) -> residual, LN -> MLP ->
    residual.

    Shapes:
        - x: ``(B, N, dim)``; rope: tables of :func:`rope_2d_tables` for ``N`` tokens or ``None``; output: like x
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, rope: RopeTables | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), rope)
        return x + self.mlp(self.norm2(x))


class CrossBlock(nn.Module):
    """CroCo's decoder block (``DecoderBlock`` of github:naver/croco ``models/blocks.py``): pre-norm self-attention
    over ``x``, cross-attention from ``x`` to the (layer-normalised) ``memory``, MLP; each with a residual.

    Shapes:
        - x: ``(B, N, dim)``; memory: ``(B, M, dim)``; rope / memory_rope: tables of :func:`rope_2d_tables` for
          ``N`` / ``M`` tokens, or ``None``; output: ``(B, N, dim)``
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.norm_memory = nn.LayerNorm(dim, eps=1e-6)
        self.cross_attn = Attention(dim, heads)
        self.norm3 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        rope: RopeTables | None = None,
        memory_rope: RopeTables | None = None,
    ) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), rope)
        x = x + self.cross_attn(self.norm2(x), rope, self.norm_memory(memory), memory_rope)
        return x + self.mlp(self.norm3(x))


def init_transformer_weights(module: nn.Module) -> None:
    """MAE's / CroCo's initialisation of a transformer's layers: xavier-uniform linears with zero biases, unit
    LayerNorms."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class RoPEViT(PatchStem):
    """Vision Transformer with 2-D RoPE in every block instead of added position embeddings.

    The interface of :class:`~ssl_vision.models.vit.ViT`, except that :meth:`encode` takes the tokens'
    positions (masked-image methods pass the kept patches' positions; ``None`` means the whole grid).

    Args:
        config: the shape; ``image_size`` and ``in_channels`` must be set.

    Shapes:
        - input: ``(B, in_channels, image_size, image_size)``
        - :meth:`patch_embed`: ``(B, N, dim)``
        - :meth:`encode`: ``(B, n, dim)``, positions ``(B or 1, n, 2)`` -> ``(B, 1 + n, dim)`` (class token first)
        - :meth:`forward_features`: ``(B, 1 + N, dim)``
        - :meth:`forward`: ``(B, embed_dim)``
    """

    def __init__(self, config: RoPEViTConfig) -> None:
        super().__init__(config)
        dim = config.dim
        self.register_buffer("positions", grid_positions(self.grid), persistent=False)  # (N, 2)
        self.blocks = nn.ModuleList(Block(dim, config.heads, config.mlp_ratio) for _ in range(config.num_blocks))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        init_transformer_weights(self)
        self.init_stem()

    def grid_positions(self, grid: int) -> torch.Tensor:
        """Positions of a ``grid`` x ``grid`` patch grid, ``(grid^2, 2)``: the model's own grid, or a smaller
        one spread over the same span (as :meth:`ViT.position_embedding`)."""
        if grid == self.grid:
            return self.positions
        return grid_positions(grid, self.grid).to(self.positions)

    def encode(self, tokens: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """Prepend the class token to patch tokens (all or a subset) and run the blocks with the tokens'
        positions (``None``: the whole grid in row-major order)."""
        if positions is None:
            if tokens.shape[1] != self.num_patches:
                raise ValueError(f"encode got {tokens.shape[1]} tokens without positions; pass their positions")
            positions = self.positions
        rope = rope_2d_tables(positions, self.embed_dim // self.config.heads, self.config.rope_base, prefix=1)
        x = torch.cat([self.cls_token.expand(len(tokens), -1, -1), tokens], dim=1)  # (B, 1 + n, dim)
        for block in self.blocks:
            x = block(x, rope)
        return self.norm(x)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """All output tokens, ``(B, 1 + N, dim)``: the class token, then the patches in row-major order. Images
        smaller than the configured size (a multiple of the patch size) are accepted."""
        tokens = self.patch_embed(images)
        return self.encode(tokens, self.grid_positions(images.shape[-1] // self.config.patch_size))


def build_vit_rope(config: dict[str, Any]) -> nn.Module:
    """Registry builder (backbone name ``vit_rope``): a :class:`RoPEViT` from the ``config`` dict of an export."""
    return RoPEViT(RoPEViTConfig(**config))

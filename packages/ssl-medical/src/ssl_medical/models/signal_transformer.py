"""A small transformer encoder for 1-D signals ``(B, C, L)``: a convolutional patch embedding, sinusoidal or learned
positions, pre-norm transformer blocks, and CLS or mean pooling to one ``(B, width)`` embedding per series."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ssl_core.errors import ConfigError


@dataclass
class SignalTransformerConfig:
    """The encoder's shape (``--set method.backbone.<name>=<value>``).

    Args:
        in_channels: signal channels (leads); the method sets it from the data.
        length: samples per series the learned positions are sized for (``pos="learned"``); the method sets it.
        patch_size: samples per token (the embedding convolution's kernel).
        patch_stride: samples between tokens (``patch_size``: non-overlapping patches).
        width: token and embedding size.
        depth: transformer blocks.
        heads: attention heads (must divide ``width``).
        mlp_ratio: hidden size of each block's MLP over ``width``.
        dropout: dropout inside the blocks.
        pos: ``sinusoidal`` (any length) or ``learned`` (series up to ``length`` samples).
        pool: ``mean`` (average of the output tokens) or ``cls`` (a learned class token's output).
    """

    in_channels: int = 1
    length: int = 140
    patch_size: int = 10
    patch_stride: int = 10
    width: int = 64
    depth: int = 3
    heads: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.0
    pos: str = "sinusoidal"
    pool: str = "mean"

    def __post_init__(self) -> None:
        if min(self.in_channels, self.length, self.patch_size, self.patch_stride, self.width, self.depth) < 1:
            raise ConfigError(f"signal transformer sizes must be positive, got {self}")
        if self.width % self.heads:
            raise ConfigError(f"backbone.heads ({self.heads}) must divide backbone.width ({self.width})")
        if self.pos not in ("sinusoidal", "learned"):
            raise ConfigError(f"backbone.pos must be 'sinusoidal' or 'learned', got {self.pos!r}")
        if self.pool not in ("mean", "cls"):
            raise ConfigError(f"backbone.pool must be 'mean' or 'cls', got {self.pool!r}")

    def num_tokens(self, length: int) -> int:
        """Tokens of a series of ``length`` samples (the series is zero-padded at the end up to whole patches)."""
        return max(math.ceil((length - self.patch_size) / self.patch_stride), 0) + 1


def sinusoidal_positions(n: int, dim: int) -> torch.Tensor:
    """The sine/cosine position table of Vaswani et al. (2017): ``(n, dim)``, even columns sine, odd cosine."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(n, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return table


class SignalTransformer(nn.Module):
    """Transformer encoder of 1-D series.

    Shapes:
        - input: ``(B, in_channels, L)``
        - :meth:`tokens`: ``(B, T, width)`` (after the final norm; the CLS token first when ``pool="cls"``)
        - output: ``(B, width)``
    """

    def __init__(self, config: SignalTransformerConfig) -> None:
        super().__init__()
        self.config = c = config
        self.embed_dim = c.width
        self.patch = nn.Conv1d(c.in_channels, c.width, c.patch_size, stride=c.patch_stride)
        self.cls = nn.Parameter(torch.zeros(1, 1, c.width)) if c.pool == "cls" else None
        extra = 1 if c.pool == "cls" else 0
        if c.pos == "learned":
            self.pos = nn.Parameter(torch.zeros(1, c.num_tokens(c.length) + extra, c.width))
            nn.init.trunc_normal_(self.pos, std=0.02)
        else:
            self.pos = None
        if self.cls is not None:
            nn.init.trunc_normal_(self.cls, std=0.02)
        layer = nn.TransformerEncoderLayer(
            c.width,
            c.heads,
            int(c.width * c.mlp_ratio),
            dropout=c.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, c.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(c.width)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The encoded tokens of a batch of series."""
        c = self.config
        if x.ndim != 3 or x.shape[1] != c.in_channels:
            raise ValueError(f"expected signals (B, {c.in_channels}, L), got shape {tuple(x.shape)}")
        length = x.shape[-1]
        n = c.num_tokens(length)
        pad = (n - 1) * c.patch_stride + c.patch_size - length
        if pad > 0:
            x = nn.functional.pad(x, (0, pad))
        t = self.patch(x).transpose(1, 2)  # (B, T, width)
        if self.cls is not None:
            t = torch.cat([self.cls.expand(len(t), -1, -1), t], dim=1)
        if self.pos is None:
            t = t + sinusoidal_positions(t.shape[1], c.width).to(t)
        else:
            if t.shape[1] > self.pos.shape[1]:
                raise ValueError(
                    f"series of {length} samples make {n} tokens but the learned positions cover "
                    f"{c.num_tokens(c.length)} (backbone.length={c.length}): use shorter series or pos='sinusoidal'"
                )
            t = t + self.pos[:, : t.shape[1]]
        return self.norm(self.blocks(t))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One embedding per series: the CLS token's output or the mean of the tokens."""
        t = self.tokens(x)
        return t[:, 0] if self.cls is not None else t.mean(1)

    def spec_config(self) -> dict[str, Any]:
        """The JSON-serialisable config that :func:`build_signal_transformer` rebuilds this encoder from."""
        return asdict(self.config)


def build_signal_transformer(config: dict[str, Any]) -> SignalTransformer:
    """Rebuild an exported :class:`SignalTransformer` from its config dict (the ``signal_transformer`` backbone)."""
    return SignalTransformer(SignalTransformerConfig(**config))

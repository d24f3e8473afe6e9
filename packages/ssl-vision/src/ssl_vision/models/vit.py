"""Vision Transformer backbones (Dosovitskiy et al., 2021, "An Image is Worth 16x16 Words").

A ViT cuts the image into ``patch_size`` x ``patch_size`` patches, embeds each with one linear map (a
strided convolution), adds fixed 2-D sine-cosine position embeddings (as MAE and MoCo v3 do), prepends a
class token and runs pre-norm transformer blocks (torch's ``nn.TransformerEncoderLayer`` with
``norm_first=True``: LN -> attention -> residual, LN -> GELU MLP -> residual), then a final LayerNorm.

The steps are separate methods so that masked-image methods can act between them: MAE encodes only the
visible patch tokens (:meth:`ViT.encode` on a subset), SimMIM swaps masked tokens for a learned mask token
before the position embedding is added.

Sizes (DeiT naming): ``tiny`` = 192 dims, 12 blocks, 3 heads (5.34 M parameters at patch 4 on 1-channel
28x28 images); ``small`` = 384 dims, 12 blocks, 6 heads (21.3 M). The embedding size is the width (``embed_dim``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

VIT_SIZES = {
    "tiny": {"dim": 192, "depth": 12, "heads": 3},
    "small": {"dim": 384, "depth": 12, "heads": 6},
}


@dataclass
class ViTConfig:
    """Shape of a :class:`ViT`.

    Args:
        size: ``tiny`` (192-d) or ``small`` (384-d); sets width, depth and heads.
        patch_size: side of the square patches; must divide the image size (4 for 28x28 images: 49 tokens).
        depth: transformer blocks (``None``: the size's 12).
        mlp_ratio: hidden width of each block's MLP as a multiple of the width.
        pool: the embedding returned by :meth:`ViT.forward`: ``cls`` (the class token, as DINO and MoCo v3)
            or ``mean`` (the average of the patch tokens).
        image_size: side of the input images; ``None`` in a method's configuration means "as the data has".
        in_channels: channels of the input images; ``None`` means "as the data has".
    """

    size: str = "tiny"
    patch_size: int = 4
    depth: int | None = None
    mlp_ratio: float = 4.0
    pool: str = "cls"
    image_size: int | None = None
    in_channels: int | None = None

    def __post_init__(self) -> None:
        from ssl_core.errors import ConfigError

        if self.size not in VIT_SIZES:
            raise ConfigError(f"vit size must be one of {', '.join(VIT_SIZES)}, got {self.size!r}")
        if self.pool not in ("cls", "mean"):
            raise ConfigError(f"vit pool must be cls or mean, got {self.pool!r}")
        if self.patch_size < 1 or (self.depth is not None and self.depth < 1) or self.mlp_ratio <= 0:
            raise ConfigError("vit patch_size, depth and mlp_ratio must be positive")
        if self.image_size is not None and self.image_size % self.patch_size:
            raise ConfigError(
                f"the vit patch_size {self.patch_size} must divide the image size {self.image_size}; "
                "choose another patch size or set data.image_size"
            )

    @property
    def dim(self) -> int:
        """The width, which is also the embedding size."""
        return VIT_SIZES[self.size]["dim"]

    @property
    def heads(self) -> int:
        return VIT_SIZES[self.size]["heads"]

    @property
    def num_blocks(self) -> int:
        return self.depth if self.depth is not None else VIT_SIZES[self.size]["depth"]


def sincos_pos_embed_2d(dim: int, grid: int, span: int | None = None) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embeddings (MAE; Vaswani et al., 2017 per axis).

    Half of the channels encode the row, half the column, each as ``[sin(p w_k), cos(p w_k)]`` with
    ``w_k = 10000^(-k / (dim/4))``. Positions run ``0, 1, ..., grid - 1``; with ``span`` they are spread
    evenly over ``[0, span - 1]`` instead, which is how a smaller crop (multi-crop's local views) gets
    positions on the scale of the full grid -- the sine-cosine counterpart of DINO's interpolation of
    learned embeddings.

    Shapes:
        - output: ``(grid * grid, dim)``, patches in row-major order
    """
    if dim % 4:
        raise ValueError(f"the 2-D sine-cosine embedding needs a width divisible by 4, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))  # (dim/4,)
    pos = torch.linspace(0, (span or grid) - 1, grid, dtype=torch.float64) if grid > 1 else torch.zeros(1).double()
    rows, cols = torch.meshgrid(pos, pos, indexing="ij")

    def encode(p: torch.Tensor) -> torch.Tensor:
        angles = p.flatten()[:, None] * omega[None]  # (grid^2, dim/4)
        return torch.cat([angles.sin(), angles.cos()], dim=1)  # (grid^2, dim/2)

    return torch.cat([encode(rows), encode(cols)], dim=1).float()


class PatchStem(nn.Module):
    """What every ViT of this package starts with: the patch grid of its configuration, a patch projection (a
    strided convolution) and a class token, initialised as MAE does (the projection like a linear layer, the class
    token small), and the pooling of its output tokens. :class:`ViT` adds sine-cosine positions and torch's blocks,
    :class:`~ssl_vision.models.rope.RoPEViT` rotary positions and its own blocks.

    Args:
        config: the shape; ``image_size`` and ``in_channels`` must be set.
    """

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        if config.image_size is None or config.in_channels is None:
            raise ValueError(f"{type(config).__name__}.image_size and in_channels must be set to build a ViT")
        self.config = config
        dim, p = config.dim, config.patch_size
        self.embed_dim = dim
        self.grid = config.image_size // p
        self.num_patches = self.grid**2
        self.patch_proj = nn.Conv2d(config.in_channels, dim, p, stride=p)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))

    def init_stem(self) -> None:
        """MAE's initialisation of the projection (xavier-uniform as a linear layer) and the class token."""
        w = self.patch_proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch_proj.bias)
        nn.init.normal_(self.cls_token, std=0.02)

    def patch_embed(self, images: torch.Tensor) -> torch.Tensor:
        """Patch tokens without positions, ``(B, N, dim)``."""
        return self.patch_proj(images).flatten(2).transpose(1, 2)  # (B, dim, g, g) -> (B, N, dim)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """All output tokens, ``(B, 1 + N, dim)``, class token first: each ViT adds its positions and blocks."""
        raise NotImplementedError

    def pool(self, features: torch.Tensor) -> torch.Tensor:
        """The embedding of :meth:`forward` from the output tokens of ``encode``."""
        return features[:, 0] if self.config.pool == "cls" else features[:, 1:].mean(dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pool(self.forward_features(images))  # (B, dim)


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into flattened patches, the pixel targets of MAE and SimMIM.

    Shapes:
        - images: ``(B, C, H, W)`` with ``H``, ``W`` multiples of ``patch_size``
        - output: ``(B, H/p * W/p, p * p * C)``, patches in row-major order, pixels as ``(p, p, C)``
    """
    b, c, h, w = images.shape
    p = patch_size
    x = images.reshape(b, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)  # (B, N, p*p*C)


def unpatchify(patches: torch.Tensor, patch_size: int, channels: int) -> torch.Tensor:
    """Inverse of :func:`patchify` for square images.

    Shapes:
        - patches: ``(B, N, p * p * C)`` with ``N`` a square
        - output: ``(B, C, sqrt(N) * p, sqrt(N) * p)``
    """
    b, n, _ = patches.shape
    g, p = int(round(n**0.5)), patch_size
    x = patches.reshape(b, g, g, p, p, channels)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, channels, g * p, g * p)


class ViT(PatchStem):
    """Vision Transformer feature extractor.

    Args:
        config: the shape; ``image_size`` and ``in_channels`` must be set.

    Shapes:
        - input: ``(B, in_channels, image_size, image_size)``
        - :meth:`patch_embed`: ``(B, N, dim)`` with ``N = (image_size / patch_size)^2``
        - :meth:`encode`: ``(B, n, dim) -> (B, 1 + n, dim)`` (class token first)
        - :meth:`forward_features`: ``(B, 1 + N, dim)``
        - :meth:`forward`: ``(B, embed_dim)`` with ``embed_dim = dim`` (192 tiny, 384 small)
    """

    def __init__(self, config: ViTConfig) -> None:
        super().__init__(config)
        dim = config.dim
        self.register_buffer("pos_embed", sincos_pos_embed_2d(dim, self.grid)[None], persistent=False)  # (1, N, D)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                dim,
                config.heads,
                int(dim * config.mlp_ratio),
                dropout=0.0,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(config.num_blocks)
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self._init_weights()

    def _init_weights(self) -> None:
        # MAE's initialisation: the patch projection like a linear layer, xavier-uniform linears, small class token
        self.init_stem()
        for m in self.blocks.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.MultiheadAttention):
                nn.init.xavier_uniform_(m.in_proj_weight)
                nn.init.zeros_(m.in_proj_bias)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Prepend the class token to position-embedded patch tokens (all or a subset) and run the blocks."""
        x = torch.cat([self.cls_token.expand(len(tokens), -1, -1), tokens], dim=1)  # (B, 1 + n, dim)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def position_embedding(self, grid: int) -> torch.Tensor:
        """Position embeddings of a ``grid`` x ``grid`` patch grid, ``(1, grid^2, dim)``: the model's own for
        its image size, spread over the same span for smaller crops (multi-crop's local views)."""
        if grid == self.grid:
            return self.pos_embed
        return sincos_pos_embed_2d(self.embed_dim, grid, self.grid).to(self.pos_embed)[None]

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """All output tokens, ``(B, 1 + N, dim)``: the class token, then the patches in row-major order.
        Images smaller than the configured size (a multiple of the patch size) are accepted."""
        tokens = self.patch_embed(images)  # (B, N, dim)
        return self.encode(tokens + self.position_embedding(images.shape[-1] // self.config.patch_size))

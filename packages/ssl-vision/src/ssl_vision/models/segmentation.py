"""Dense heads on ViT patch tokens: a light segmentation decoder, MFM's Rebuilder, and mean IoU.

- :class:`SegmentationDecoder`: patch tokens on their grid -> class logits per token (a small convolutional
  head) -> bilinear upsampling to pixels, as the light decoders of DAFormer-style UDA segmenters.
- :class:`Rebuilder` (Zhou et al., 2025, "Masked Feature Modeling Enhances Adaptive Segmentation"): a
  share of the encoder's feature tokens is replaced by a learned mask token, and a light transformer rebuilds
  the full feature map, which the segmentation decoder then classifies; it is trained jointly and discarded
  at inference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssl_vision.models.vit import sincos_pos_embed_2d


class SegmentationDecoder(nn.Module):
    """Class logits per pixel from ViT patch tokens.

    The tokens are laid out on their ``grid`` x ``grid`` map; a 1x1 convolution projects them to ``hidden``
    channels, a 3x3 convolution mixes each token with its neighbours, a 1x1 convolution gives the class
    logits per token, and bilinear upsampling brings them to the image size.

    Args:
        dim: width of the tokens (the encoder's ``embed_dim``).
        num_classes: classes to predict (scenes: 11, background and the 10 Fashion-MNIST classes).
        grid: side of the token map (``image_size / patch_size``).
        hidden: channels of the head.

    Shapes:
        - tokens: ``(B, grid * grid, dim)``, row-major like the ViT's patch tokens
        - :meth:`forward` output: ``(B, num_classes, size, size)``; :meth:`token_logits`: ``(B, num_classes,
          grid, grid)``
    """

    def __init__(self, dim: int, num_classes: int, grid: int, hidden: int = 128) -> None:
        super().__init__()
        self.grid, self.num_classes = grid, num_classes
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Conv2d(dim, hidden, 1)
        self.mix = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.classify = nn.Conv2d(hidden, num_classes, 1)

    def token_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Class logits on the token grid, ``(B, N, D) -> (B, K, grid, grid)``."""
        b, n, d = tokens.shape
        if n != self.grid**2:
            raise ValueError(f"the decoder expects {self.grid**2} tokens ({self.grid}x{self.grid}), got {n}")
        x = self.norm(tokens).transpose(1, 2).reshape(b, d, self.grid, self.grid)
        x = F.gelu(self.proj(x))
        x = x + F.gelu(self.mix(x))
        return self.classify(x)

    def forward(self, tokens: torch.Tensor, size: int) -> torch.Tensor:
        """Pixel logits, ``(B, N, D) -> (B, K, size, size)`` (token logits upsampled bilinearly)."""
        return F.interpolate(self.token_logits(tokens), size=(size, size), mode="bilinear", align_corners=False)


class Rebuilder(nn.Module):
    """MFM's Rebuilder: rebuild a feature map of which a share of tokens was masked.

    Masked tokens are replaced by one learned mask token; fixed 2-D sine-cosine position embeddings tell the
    blocks where each token lies; ``depth`` pre-norm transformer blocks and a final linear map give the
    rebuilt tokens, in the space of the encoder's features (the decoder classifies them).

    Args:
        dim: width of the feature tokens.
        grid: side of the token map.
        depth: transformer blocks (1 or 2: the Rebuilder is light).
        heads: attention heads.
        mlp_ratio: MLP width as a multiple of ``dim``.

    Shapes:
        - features: ``(B, N, dim)`` with ``N = grid * grid``; mask: ``(B, N)`` bool, True where masked
        - output: ``(B, N, dim)``
    """

    def __init__(self, dim: int, grid: int, depth: int = 1, heads: int = 3, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.normal_(self.mask_token, std=0.02)
        self.register_buffer("pos_embed", sincos_pos_embed_2d(dim, grid)[None], persistent=False)  # (1, N, D)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                dim, heads, int(dim * mlp_ratio), dropout=0.0, activation="gelu", batch_first=True, norm_first=True
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, dim)

    @staticmethod
    def mask_features(features: torch.Tensor, mask: torch.Tensor, mask_token: torch.Tensor) -> torch.Tensor:
        """Replace the masked tokens by ``mask_token``: ``(B, N, D), (B, N), (1, 1, D) -> (B, N, D)``."""
        w = mask[..., None].to(features.dtype)
        return features * (1 - w) + mask_token * w

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.mask_features(features, mask, self.mask_token) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.out(self.norm(x))

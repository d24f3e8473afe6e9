"""MAE's light decoder (He et al., 2022), shared by the masked-image methods that predict every patch from the
encoded visible ones (MAE, and the MAE variants of the paper recipes)."""

from __future__ import annotations

import torch
from torch import nn

from ssl_vision.models.vit import sincos_pos_embed_2d


class MaskedDecoder(nn.Module):
    """Encoded visible tokens in, a prediction for every patch out.

    The encoded visible tokens (class token first) are projected to the decoder's width; a shared, learned mask
    token fills every removed position; the sequence is put back in patch order (``ids_restore``), fixed 2-D
    sine-cosine position embeddings are added, and pre-norm transformer blocks, a LayerNorm and a linear map
    give ``out_dim`` values per patch.

    Args:
        in_dim: width of the encoder's tokens.
        dim: width of the decoder.
        depth: decoder blocks.
        heads: attention heads.
        grid: side of the patch grid (``L = grid^2`` patches).
        out_dim: predicted values per patch (``p * p * C`` for pixels).

    Shapes:
        - latent: ``(B, 1 + L_keep, in_dim)``, the class token first, then the kept patches in ``ids_keep`` order
        - ids_restore: ``(B, L)``, the permutation that puts "kept first, then removed" back in patch order
        - output: ``(B, L, out_dim)``
    """

    def __init__(self, in_dim: int, dim: int, depth: int, heads: int, grid: int, out_dim: int) -> None:
        super().__init__()
        self.embed = nn.Linear(in_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        pos = torch.cat([torch.zeros(1, dim), sincos_pos_embed_2d(dim, grid)])
        self.register_buffer("pos_embed", pos[None], persistent=False)  # (1, 1 + L, dim): class token first
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, heads, 4 * dim, 0.0, "gelu", batch_first=True, norm_first=True)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pred = nn.Linear(dim, out_dim)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in [self.embed, self.pred, *self.blocks.modules()]:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        x = self.embed(latent)  # (B, 1 + L_keep, d)
        b, n_keep, d = x.shape[0], x.shape[1] - 1, x.shape[2]
        masked = self.mask_token.expand(b, ids_restore.shape[1] - n_keep, -1)  # (B, L - L_keep, d)
        patches = torch.cat([x[:, 1:], masked], dim=1)  # kept first, then masked
        patches = patches.gather(1, ids_restore[..., None].expand(-1, -1, d))  # un-shuffle: (B, L, d)
        x = torch.cat([x[:, :1], patches], dim=1) + self.pos_embed  # (B, 1 + L, d)
        for block in self.blocks:
            x = block(x)
        return self.pred(self.norm(x))[:, 1:]  # drop the class token: (B, L, out_dim)

"""CroCo: cross-view completion (Weinzaepfel et al., 2022, "CroCo: Self-Supervised Pre-training for 3D Vision Tasks
by Cross-View Completion") and CroCo v2 (Weinzaepfel et al., 2022, "Improved Cross-view Completion Pre-training
for Stereo Matching and Optical Flow").

Two views of one scene: most patches of view 1 are removed (90% in the papers); one shared ViT encodes view 1's
visible patches and the whole of view 2; a decoder whose blocks self-attend over view 1's tokens (the encoded
visible ones and a learned mask token at every removed position) and cross-attend to view 2's encoded tokens
predicts view 1's removed patches; the loss is the mean squared error on the removed patches, each target patch
normalised by its own mean and variance (as github:naver/croco ``models/croco.py``, ``models/blocks.py``
``DecoderBlock``, ``models/criterion.py``). View 2 carries what view 1 lost, seen from elsewhere, so the encoder
has to describe the scene's geometry to fill the gaps.

- v1 (:class:`CroCoConfig`): the repository's ViT with absolute 2-D sine-cosine position embeddings, added to
  the encoder's patches and to both decoder streams (CroCo's ``pos_embed='cosine'``).
- v2 (:class:`CroCoV2Config`): 2-D rotary embeddings (:mod:`ssl_vision.models.rope`) in every attention of the
  encoder and the decoder instead (``pos_embed='RoPE100'``), exported as the backbone ``vit_rope``.

Both views are the scene pairs of ``VisionDataConfig(name="scenes", scene_items="pair")``: the same layout seen
through a random homography with a photometric change. The augmentation is light and keeps the pair's geometry
consistent: the two views swap roles with probability ``swap_prob``, and one horizontal flip is applied to both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import default_collate

from ssl_core.errors import ConfigError
from ssl_core.losses import masked_mse
from ssl_core.masking import random_mask
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.common import backbone_spec, build_vit_for
from ssl_vision.models.rope import (
    CrossBlock,
    RoPEViT,
    RoPEViTConfig,
    grid_positions,
    init_transformer_weights,
    rope_2d_tables,
)
from ssl_vision.models.vit import ViT, ViTConfig, patchify, sincos_pos_embed_2d

PAIR_HINT = "CroCo trains on scene pairs: use --set data.name=scenes data.scene_items=pair (the recipe's default data)"


@dataclass
class CroCoConfig:
    """CroCo v1 settings (``--set method.<name>=<value>``).

    Args:
        backbone: the shared ViT encoder (ViT-tiny with 7-pixel patches: 64 patches of a 56x56 scene, 6 visible
            at the paper's 90% mask ratio), with absolute sine-cosine position embeddings.
        decoder_dim: decoder width (512 in the paper with ViT-B; 128 here, MAE's recipe's ratio).
        decoder_depth: decoder blocks, each self-attention + cross-attention + MLP (8 in the paper; 2 here).
        decoder_heads: decoder attention heads (16; 4 here).
        mask_ratio: share of view 1's patches removed (0.9).
        norm_pix_loss: normalise each target patch by its mean and variance (the papers' setting).
        swap_prob: probability that the two views swap roles (the pairs are symmetric).
        hflip: probability of one horizontal flip of both views together.
    """

    backbone: ViTConfig = field(default_factory=lambda: ViTConfig(patch_size=7))
    decoder_dim: int = 128
    decoder_depth: int = 2
    decoder_heads: int = 4
    mask_ratio: float = 0.9
    norm_pix_loss: bool = True
    swap_prob: float = 0.5
    hflip: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.mask_ratio < 1:
            raise ConfigError(f"method.mask_ratio must lie in (0, 1), got {self.mask_ratio}")
        if self.decoder_dim % 4 or self.decoder_dim % self.decoder_heads or self.decoder_depth < 1:
            raise ConfigError(
                f"method.decoder_dim ({self.decoder_dim}) must be divisible by 4 and by decoder_heads "
                f"({self.decoder_heads}), and decoder_depth >= 1"
            )
        if (self.decoder_dim // self.decoder_heads) % 4 and isinstance(self.backbone, RoPEViTConfig):
            raise ConfigError("2-D RoPE needs a decoder head width (decoder_dim / decoder_heads) divisible by 4")
        if not (0 <= self.swap_prob <= 1 and 0 <= self.hflip <= 1):
            raise ConfigError("method.swap_prob and method.hflip are probabilities in [0, 1]")


@dataclass
class CroCoV2Config(CroCoConfig):
    """CroCo v2 settings: those of :class:`CroCoConfig` with a RoPE-2D ViT (``backbone.rope_base``: 100) in the
    encoder and RoPE-2D of the same base in the decoder's attentions."""

    backbone: RoPEViTConfig = field(default_factory=lambda: RoPEViTConfig(patch_size=7))


class ScenePairs:
    """``{"image", "view2", ...} -> {"image", "view2", "swap", "flip", "mask", "ids_keep", "ids_restore"}``: a scene
    pair with its random draws (role swap, joint flip, a mask of ``mask_ratio`` of view 1's patches), drawn per
    item from torch's global generator; :meth:`collate` applies them to the batch and normalises the pixels.
    Picklable (it runs in data-loader workers).

    Args:
        info: the images' channels, size and normalisation.
        num_patches: patches per view.
        mask_ratio: share of masked patches of view 1.
        swap_prob: probability that the views swap roles.
        hflip: probability of flipping both views.

    Shapes:
        - item: ``{"image": uint8 (C, S, S), "view2": uint8 (C, S, S), ...}``
        - collated: image, view2 float ``(B, C, S, S)``; mask ``(B, L)`` bool (True: removed); ids_keep
          ``(B, L_keep)``; ids_restore ``(B, L)``
    """

    def __init__(self, info: ImageInfo, num_patches: int, mask_ratio: float, swap_prob: float, hflip: float) -> None:
        self.num_patches, self.mask_ratio, self.swap_prob, self.hflip = num_patches, mask_ratio, swap_prob, hflip
        self.mean = torch.tensor(info.mean or [0.0] * info.channels, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(info.std or [1.0] * info.channels, dtype=torch.float32).view(1, -1, 1, 1)

    def __call__(self, item: Any) -> dict[str, Any]:
        if not isinstance(item, dict) or "view2" not in item:
            raise ConfigError(f"CroCo got {type(item).__name__} training items without a second view. {PAIR_HINT}")
        m = random_mask(1, self.num_patches, self.mask_ratio)
        return {
            "image": item["image"],
            "view2": item["view2"],
            "swap": bool(torch.rand(1).item() < self.swap_prob),
            "flip": bool(torch.rand(1).item() < self.hflip),
            "mask": m.mask[0],
            "ids_keep": m.ids_keep[0],
            "ids_restore": m.ids_restore[0],
        }

    def collate(self, items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Batch the draws, swap and flip the views, scale and normalise them."""
        batch = default_collate(list(items))
        swap, flip = batch.pop("swap"), batch.pop("flip")
        first = torch.where(swap[:, None, None, None], batch["view2"], batch["image"])
        second = torch.where(swap[:, None, None, None], batch["image"], batch["view2"])
        out = {k: batch[k] for k in ("mask", "ids_keep", "ids_restore")}
        for key, x in (("image", first), ("view2", second)):
            x = torch.where(flip[:, None, None, None], x.flip(-1), x).float()
            out[key] = x.mul_(1.0 / 255).sub_(self.mean).div_(self.std)
        return out


class CrossViewDecoder(nn.Module):
    """CroCo's decoder: view 1's tokens (encoded visible ones, a learned mask token at every removed position)
    self-attend and cross-attend to view 2's encoded tokens in :class:`~ssl_vision.models.rope.CrossBlock`\\ s;
    a LayerNorm and a linear map predict every patch of view 1.

    Both streams share one linear map from the encoder's width. Positions: absolute sine-cosine embeddings
    added to both streams (``rope_base=None``, v1), or 2-D RoPE in every attention (v2). The class tokens of
    both encodings stay in the streams without a position.

    Args:
        in_dim: encoder width.
        dim: decoder width.
        depth: decoder blocks.
        heads: attention heads.
        grid: side of the patch grid (``L = grid^2``).
        out_dim: predicted values per patch (``p * p * C``).
        rope_base: RoPE's base (v2) or ``None`` (v1).

    Shapes:
        - latent1: ``(B, 1 + L_keep, in_dim)`` (class token, then the kept patches in ``ids_keep`` order)
        - ids_restore: ``(B, L)``
        - latent2: ``(B, 1 + L, in_dim)`` (view 2, all patches)
        - output: ``(B, L, out_dim)``
    """

    def __init__(
        self, in_dim: int, dim: int, depth: int, heads: int, grid: int, out_dim: int, rope_base: float | None
    ) -> None:
        super().__init__()
        self.embed = nn.Linear(in_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.rope = rope_base is not None
        if self.rope:  # one set of rotations for both streams: a class token, then the whole grid
            cos, sin = rope_2d_tables(grid_positions(grid), dim // heads, rope_base, prefix=1)
            self.register_buffer("rope_cos", cos, persistent=False)  # (1, 1, 1 + L, dim / heads)
            self.register_buffer("rope_sin", sin, persistent=False)
        else:
            pos = torch.cat([torch.zeros(1, dim), sincos_pos_embed_2d(dim, grid)])
            self.register_buffer("pos_embed", pos[None], persistent=False)  # (1, 1 + L, dim)
        self.blocks = nn.ModuleList(CrossBlock(dim, heads, 4.0) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pred = nn.Linear(dim, out_dim)
        init_transformer_weights(self)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, latent1: torch.Tensor, ids_restore: torch.Tensor, latent2: torch.Tensor) -> torch.Tensor:
        x, y = self.embed(latent1), self.embed(latent2)  # (B, 1 + L_keep, d), (B, 1 + L, d)
        b, n_keep, d = x.shape[0], x.shape[1] - 1, x.shape[2]
        masked = self.mask_token.expand(b, ids_restore.shape[1] - n_keep, -1)
        patches = torch.cat([x[:, 1:], masked], dim=1).gather(1, ids_restore[..., None].expand(-1, -1, d))
        x = torch.cat([x[:, :1], patches], dim=1)  # (B, 1 + L, d), patch order
        rope = (self.rope_cos, self.rope_sin) if self.rope else None
        if not self.rope:
            x, y = x + self.pos_embed, y + self.pos_embed
        for block in self.blocks:
            x = block(x, y, rope, rope)
        return self.pred(self.norm(x))[:, 1:]  # (B, L, out_dim)


class CroCo(Method):
    """CroCo (v1 with :class:`CroCoConfig`, v2 with :class:`CroCoV2Config`): shared encoder on view 1's visible
    patches and on all of view 2, cross-attention decoder, MSE on view 1's removed patches.

    Shapes:
        - batch: ``{"image": (B, C, S, S), "view2": (B, C, S, S), "mask": (B, L), "ids_keep": (B, L_keep),
          "ids_restore": (B, L)}``
        - :meth:`embed`: ``(B, C, S, S) -> (B, embed_dim)`` (the encoder on a whole image)
    """

    def __init__(self, config: CroCoConfig, info: ImageInfo) -> None:
        super().__init__()
        if getattr(info, "scenes", None) is None:
            raise ConfigError(f"CroCo needs scene pairs, but the data has no scenes. {PAIR_HINT}")
        self.config, self.info = config, info
        c = config
        self.rope = isinstance(c.backbone, RoPEViTConfig)
        self.backbone: ViT | RoPEViT = build_vit_for(c.backbone, info)
        vit = self.backbone
        self.decoder = CrossViewDecoder(
            vit.embed_dim, c.decoder_dim, c.decoder_depth, c.decoder_heads, vit.grid,
            vit.config.patch_size**2 * info.channels, c.backbone.rope_base if self.rope else None,
        )  # fmt: skip

    def pretext(self) -> ScenePairs:
        c = self.config
        return ScenePairs(self.info, self.backbone.num_patches, c.mask_ratio, c.swap_prob, c.hflip)

    def encode_visible(self, images: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
        """Encode the kept patches of view 1 only: ``(B, C, S, S), (B, L_keep) -> (B, 1 + L_keep, D)``."""
        tokens = self.backbone.patch_embed(images)  # (B, L, D)
        if not self.rope:
            tokens = tokens + self.backbone.pos_embed
        visible = tokens.gather(1, ids_keep[..., None].expand(-1, -1, tokens.shape[-1]))  # (B, L_keep, D)
        if self.rope:
            return self.backbone.encode(visible, self.backbone.positions[ids_keep])  # positions (B, L_keep, 2)
        return self.backbone.encode(visible)

    def predict(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """View 1's patches predicted from its visible patches and view 2: ``(B, L, p * p * C)``."""
        latent1 = self.encode_visible(batch["image"], batch["ids_keep"])
        latent2 = self.backbone.forward_features(batch["view2"])  # (B, 1 + L, D)
        return self.decoder(latent1, batch["ids_restore"], latent2)

    def forward(self, batch: dict[str, torch.Tensor]) -> MethodOutput:
        pred = self.predict(batch)
        target = patchify(batch["image"], self.backbone.config.patch_size)
        loss = masked_mse(pred, target, batch["mask"], norm_pix=self.config.norm_pix_loss)
        return MethodOutput(loss, {})

    def backbone_spec(self) -> BackboneSpec:
        return backbone_spec(self.backbone, self.info)

"""DropPos (Wang et al., 2023, "DropPos: Pre-Training Vision Transformers by Reconstructing Dropped Positions").

As the paper and its reference code (``models_DropPos_mae.py``, ``engine_pretrain.py``, the ``mae_pos_target``
setting of ``scripts/pretrain_base.sh``):

- a random ``mask_ratio`` (0.75) of the patches is removed, as in MAE, and the ViT encoder sees only the visible
  ones (plus the class token);
- of the visible patches, a random ``pos_mask_ratio`` (0.75) lose their position embedding: they get one shared,
  learned mask position token instead (the reference's ``mask_token_type='param'``);
- a light decoder without position embeddings (a linear map to its width, transformer blocks, LayerNorm, a linear
  map to ``L`` logits) classifies, for every visible token, which of the ``L`` positions of the patch grid it came
  from; the loss is the cross-entropy on the tokens whose position was dropped;
- position smoothing: the target of a patch at position ``i`` is not one-hot but ``exp(-d(i, j)^2 / sigma^2)``
  over the positions ``j`` (``d`` the Euclidean distance on the patch grid), normalised to sum to one, with
  ``sigma`` decaying linearly from ``sigma`` (1) to 0 over training (``sigma_decay``; the method's ``sigma``
  schedule). The reference steps sigma once per epoch; here it decays per step, since a run of one to three
  epochs would otherwise barely move. The reference divides the kernel by ``weight.sum(-1)`` without
  ``keepdim``, which broadcasts over columns (its rows then do not quite sum to one); here each row is normalised;
- attentive reconstruction (the reference's ``attn_guide``): patches that look alike (background, texture) may
  swap places without harm, so each dropped patch's loss is weighted by how salient the patch is: the cosine
  similarity of the class token and the patch token of the current encoder on the whole, unmasked image (no
  gradient), a softmax over the ``L`` patches at temperature 0.1, gathered at the visible patches and renormalised
  over them; the loss is ``sum(w * CE) / sum(w)`` over the dropped patches. The full-image pass costs about one
  more encoder forward on all ``L`` tokens per step (``attentive=False`` skips it: plain mean over dropped patches).

The exported backbone is the plain ViT with its own fixed sine-cosine position embeddings (the pretraining encoder
uses exactly those for the patches that keep theirs), so probes and users see a normal ViT.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.errors import ConfigError
from ssl_core.masking import random_mask
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.common import backbone_spec, build_vit_for
from ssl_vision.models.vit import ViTConfig
from ssl_vision.pretext.masked import MaskedView
from ssl_vision.transforms.views import View, ViewConfig, mae_view


@dataclass
class DropPosConfig:
    """DropPos settings (``--set method.<name>=<value>``).

    Args:
        backbone: the ViT encoder (default ViT-tiny with 7-pixel patches, as MAE: 64 positions on 56x56 scenes).
        decoder_dim: width of the position decoder (512 in the reference; 128 here, as MAE's decoder here).
        decoder_depth: decoder blocks (2 in the reference's default ``dec512d2b``).
        decoder_heads: decoder attention heads (16; 4 here).
        mask_ratio: share of removed patches (0.75).
        pos_mask_ratio: share of the visible patches whose position embedding is dropped (the paper's gamma, 0.75).
        sigma: width of the position smoothing, in patches (1; 0 gives one-hot targets).
        sigma_decay: decay ``sigma`` linearly to 0 over training (as the reference's ``--sigma_decay``).
        attentive: attentive reconstruction (the reference's ``--attn_guide``).
        attn_temperature: temperature of the softmax over class-token-to-patch similarities (0.1).
        view: the light augmentation (random resized crop and flip, as MAE).
    """

    backbone: ViTConfig = field(default_factory=lambda: ViTConfig(patch_size=7))
    decoder_dim: int = 128
    decoder_depth: int = 2
    decoder_heads: int = 4
    mask_ratio: float = 0.75
    pos_mask_ratio: float = 0.75
    sigma: float = 1.0
    sigma_decay: bool = True
    attentive: bool = True
    attn_temperature: float = 0.1
    view: ViewConfig = field(default_factory=mae_view)

    def __post_init__(self) -> None:
        for name in ("mask_ratio", "pos_mask_ratio"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"method.{name} must lie in [0, 1), got {getattr(self, name)}")
        if self.sigma < 0:
            raise ConfigError(f"method.sigma must be >= 0 (0: one-hot position targets), got {self.sigma}")
        if self.attn_temperature <= 0:
            raise ConfigError(f"method.attn_temperature must be > 0, got {self.attn_temperature}")
        if self.decoder_dim % self.decoder_heads:
            raise ConfigError(
                f"method.decoder_dim={self.decoder_dim} must be divisible by method.decoder_heads={self.decoder_heads}"
            )


def position_smoothing(grid: int, sigma: float) -> torch.Tensor:
    """DropPos's smoothed position targets: row ``i`` is the target distribution of a patch at position ``i``.

    ``S[i, j] = exp(-d(i, j)^2 / sigma^2) / sum_k exp(-d(i, k)^2 / sigma^2)`` with ``d`` the Euclidean distance of
    positions ``i``, ``j`` on the ``grid`` x ``grid`` patch grid (row-major, as the patch tokens); ``sigma = 0``
    gives the identity (one-hot targets).

    Shapes:
        - output: ``(grid^2, grid^2)``, rows summing to one
    """
    n = grid * grid
    if sigma == 0:
        return torch.eye(n)
    idx = torch.arange(n)
    coords = torch.stack([idx // grid, idx % grid], dim=1).double()  # (L, 2): (row, column)
    d2 = (coords[:, None] - coords[None]).pow(2).sum(-1)  # (L, L)
    weight = torch.exp(-d2 / sigma**2)
    return (weight / weight.sum(-1, keepdim=True)).float()


def attentive_weights(features: torch.Tensor, ids_keep: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Attentive reconstruction's per-patch weights (the reference's ``get_feature_similarity``).

    The cosine similarity of the class token and each patch token of the full image, a softmax over the ``L``
    patches at ``temperature``, gathered at the visible patches and renormalised to sum to one over them.

    Shapes:
        - features: ``(B, 1 + L, D)``, the class token first (the encoder on the whole image)
        - ids_keep: ``(B, K)``, the visible patches
        - output: ``(B, K)``
    """
    sim = F.cosine_similarity(features[:, :1], features[:, 1:], dim=-1)  # (B, L)
    attn = F.softmax(sim / temperature, dim=-1).gather(1, ids_keep)  # (B, K)
    return attn / attn.sum(-1, keepdim=True)


def droppos_loss(
    logits: torch.Tensor,
    positions: torch.Tensor,
    dropped: torch.Tensor,
    smoothing: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DropPos's position-classification loss (the reference's ``forward_drop_pos_loss``).

    For each visible token the soft cross-entropy ``-sum_j S[p, j] log softmax(logits)_j`` against the smoothed
    target of its true position ``p``, averaged over the tokens whose position was dropped, weighted by
    ``weights`` when given: ``sum(w * dropped * CE) / sum(w * dropped)``.

    Args:
        logits: the decoder's position logits of the visible tokens.
        positions: each visible token's true position (its index in the patch grid).
        dropped: True where the token's position embedding was dropped.
        smoothing: :func:`position_smoothing` (rows: targets per position).
        weights: attentive reconstruction's weights (:func:`attentive_weights`), or ``None``.

    Shapes:
        - logits: ``(B, K, L)``; positions, dropped, weights: ``(B, K)``; smoothing: ``(L, L)``

    Returns:
        ``(loss, accuracy)``: the scalar loss and the (unweighted) top-1 accuracy of the dropped positions.
    """
    target = smoothing[positions]  # (B, K, L)
    ce = -(target * F.log_softmax(logits, dim=-1)).sum(-1)  # (B, K)
    w = dropped.to(ce.dtype)
    if weights is not None:
        w = w * weights
    loss = (ce * w).sum() / w.sum()
    with torch.no_grad():
        hit = (logits.argmax(-1) == positions) & dropped
        acc = hit.sum() / dropped.sum().clamp(min=1)
    return loss, acc


class DropPosView(MaskedView):
    """``image -> {"image", "mask", "ids_keep", "ids_restore", "pos_dropped"}``: MAE's view and patch mask
    (:class:`~ssl_vision.pretext.masked.MaskedView`) and, among the ``K`` visible patches (in ``ids_keep`` order),
    a random ``pos_mask_ratio`` whose position embeddings are dropped (:func:`ssl_core.masking.random_mask`).

    Drawn per image from torch's global generator, like the mask. Picklable.

    Shapes:
        - collated ``pos_dropped``: ``(B, K)`` bool, True where the position is dropped
    """

    def __init__(self, view: View, num_patches: int, mask_ratio: float, pos_mask_ratio: float) -> None:
        super().__init__(view, num_patches, mask_ratio)
        self.pos_mask_ratio = pos_mask_ratio

    def __call__(self, image: torch.Tensor) -> dict[str, Any]:
        item = super().__call__(image)
        item["pos_dropped"] = random_mask(1, len(item["ids_keep"]), self.pos_mask_ratio).mask[0]
        return item


class PositionDecoder(nn.Module):
    """DropPos's decoder: no position embeddings; a linear map to ``dim``, pre-norm transformer blocks, a LayerNorm
    and a linear map to one logit per position, for every token but the class token.

    Args:
        in_dim: width of the encoder's tokens.
        dim: width of the decoder.
        depth: decoder blocks.
        heads: attention heads.
        num_positions: ``L``, the positions of the patch grid.

    Shapes:
        - input: ``(B, 1 + K, in_dim)``, the class token first; output: ``(B, K, L)``
    """

    def __init__(self, in_dim: int, dim: int, depth: int, heads: int, num_positions: int) -> None:
        super().__init__()
        self.embed = nn.Linear(in_dim, dim)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(dim, heads, 4 * dim, 0.0, "gelu", batch_first=True, norm_first=True)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pred = nn.Linear(dim, num_positions)
        for m in [self.embed, self.pred, *self.blocks.modules()]:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        x = self.embed(latent)
        for block in self.blocks:
            x = block(x)
        return self.pred(self.norm(x))[:, 1:]  # drop the class token: (B, K, L)


class DropPos(Method):
    """DropPos: classify the dropped positions of visible patches from their appearance.

    Shapes:
        - batch: ``{"image": (B, C, H, W), "ids_keep": (B, K), "pos_dropped": (B, K), ...}`` (:class:`DropPosView`)
        - :meth:`embed`: ``(B, C, H, W) -> (B, embed_dim)`` (the plain ViT on the whole image)
    """

    def __init__(self, config: DropPosConfig, info: ImageInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        c = config
        self.backbone = build_vit_for(c.backbone, info)
        vit = self.backbone
        visible = int(vit.num_patches * (1 - c.mask_ratio))
        if visible < 1 or visible - int(visible * (1 - c.pos_mask_ratio)) < 1:
            raise ConfigError(
                f"with {vit.num_patches} patches, method.mask_ratio={c.mask_ratio} leaves {visible} visible and "
                f"method.pos_mask_ratio={c.pos_mask_ratio} drops the position of "
                f"{visible - int(visible * (1 - c.pos_mask_ratio))} of them: there must be at least one; lower "
                "the ratios or use a smaller method.backbone.patch_size"
            )
        self.mask_pos_token = nn.Parameter(torch.zeros(1, 1, vit.embed_dim))
        nn.init.normal_(self.mask_pos_token, std=0.02)
        self.decoder = PositionDecoder(vit.embed_dim, c.decoder_dim, c.decoder_depth, c.decoder_heads, vit.num_patches)

    def pretext(self) -> DropPosView:
        c = self.config
        return DropPosView(View(c.view, self.info), self.backbone.num_patches, c.mask_ratio, c.pos_mask_ratio)

    def schedules(self, total_steps: int, steps_per_epoch: int) -> Mapping[str, np.ndarray]:
        """``sigma``: the position smoothing's width, linear from ``sigma`` to 0 with ``sigma_decay``."""
        c = self.config
        decay = 1 - np.arange(total_steps) / max(total_steps, 1) if c.sigma_decay else np.ones(total_steps)
        return {"sigma": c.sigma * decay}

    def forward_encoder(self, images: torch.Tensor, ids_keep: torch.Tensor, dropped: torch.Tensor) -> torch.Tensor:
        """Encode the visible patches, those of ``dropped`` with the mask position token instead of their position
        embedding: ``(B, C, H, W), (B, K), (B, K) -> (B, 1 + K, D)``."""
        vit = self.backbone
        tokens = vit.patch_embed(images)  # (B, L, D)
        index = ids_keep[..., None].expand(-1, -1, tokens.shape[-1])
        visible = tokens.gather(1, index)  # (B, K, D)
        pos = vit.pos_embed.expand(len(tokens), -1, -1).gather(1, index)  # (B, K, D)
        pos = torch.where(dropped[..., None], self.mask_pos_token.to(pos.dtype), pos)
        return vit.encode(visible + pos)

    def forward(self, batch: dict[str, torch.Tensor]) -> MethodOutput:
        images, ids_keep, dropped = batch["image"], batch["ids_keep"], batch["pos_dropped"]
        logits = self.decoder(self.forward_encoder(images, ids_keep, dropped))  # (B, K, L)
        sigma = float(self.current_step["sigma"])
        smoothing = position_smoothing(self.backbone.grid, sigma).to(logits)
        weights = None
        if self.config.attentive:
            with torch.no_grad():
                weights = attentive_weights(
                    self.backbone.forward_features(images), ids_keep, self.config.attn_temperature
                )
        loss, acc = droppos_loss(logits, ids_keep, dropped, smoothing, weights)
        return MethodOutput(loss, {"pos_acc": acc, "sigma": sigma})

    def backbone_spec(self) -> BackboneSpec:
        return backbone_spec(self.backbone, self.info)

"""MAE (He et al., 2022, "Masked Autoencoders Are Scalable Vision Learners").

As the paper's Fig. 1 and its reference code: a random 75% of the patches is removed; the ViT encoder
sees only the visible patches (plus the class token), so encoding costs a quarter of the tokens; a light
decoder gets the encoded visible tokens and a shared, learned mask token at every removed position, both
with position embeddings, and predicts the pixels of every patch; the loss is the mean squared error on
the removed patches, each target patch normalised by its own mean and variance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ssl_core.losses import masked_mse
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.common import backbone_spec, build_vit_for
from ssl_vision.models.decoder import MaskedDecoder
from ssl_vision.models.vit import ViTConfig, patchify
from ssl_vision.pretext.masked import MaskedView
from ssl_vision.transforms.views import View, ViewConfig, mae_view


@dataclass
class MAEConfig:
    """MAE settings (``--set method.<name>=<value>``).

    Args:
        backbone: the ViT encoder (default ViT-tiny with 7-pixel patches: 16 patches of a 28x28 image, 4
            visible; 4-pixel patches, 49 tokens, cost 2.4x a training step and 4x a probe on 2 cores).
        decoder_dim: width of the decoder (512 in the paper; 128 here, the same ratio to the encoder's
            width as the paper's light decoder has to ViT-L).
        decoder_depth: decoder blocks (8 in the paper; 2 here).
        decoder_heads: decoder attention heads (16; 4 here).
        mask_ratio: share of removed patches (0.75).
        norm_pix_loss: normalise each target patch (the paper's better setting).
        view: the light augmentation (random resized crop and flip).
    """

    backbone: ViTConfig = field(default_factory=lambda: ViTConfig(patch_size=7))
    decoder_dim: int = 128
    decoder_depth: int = 2
    decoder_heads: int = 4
    mask_ratio: float = 0.75
    norm_pix_loss: bool = True
    view: ViewConfig = field(default_factory=mae_view)


class MAE(Method):
    """MAE: encoder on the visible patches, light decoder over all positions, MSE on the masked patches.

    Shapes:
        - batch: ``{"image": (B, C, H, W), "mask": (B, L), "ids_keep": (B, L_keep), "ids_restore": (B, L)}``
        - :meth:`embed`: ``(B, C, H, W) -> (B, embed_dim)`` (the encoder on the whole image)
    """

    def __init__(self, config: MAEConfig, info: ImageInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        c = config
        self.backbone = build_vit_for(c.backbone, info)
        vit = self.backbone
        self.decoder = MaskedDecoder(
            vit.embed_dim, c.decoder_dim, c.decoder_depth, c.decoder_heads, vit.grid,
            vit.config.patch_size**2 * info.channels,
        )  # fmt: skip

    def pretext(self) -> MaskedView:
        return MaskedView(View(self.config.view, self.info), self.backbone.num_patches, self.config.mask_ratio)

    def forward_encoder(self, images: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
        """Encode the kept patches only: ``(B, C, H, W), (B, L_keep) -> (B, 1 + L_keep, D)``."""
        tokens = self.backbone.patch_embed(images) + self.backbone.pos_embed  # (B, L, D)
        visible = tokens.gather(1, ids_keep[..., None].expand(-1, -1, tokens.shape[-1]))  # (B, L_keep, D)
        return self.backbone.encode(visible)

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Predict every patch: ``(B, 1 + L_keep, D), (B, L) -> (B, L, p * p * C)``."""
        return self.decoder(latent, ids_restore)

    def forward(self, batch: dict[str, torch.Tensor]) -> MethodOutput:
        images = batch["image"]
        pred = self.forward_decoder(self.forward_encoder(images, batch["ids_keep"]), batch["ids_restore"])
        target = patchify(images, self.backbone.config.patch_size)
        loss = masked_mse(pred, target, batch["mask"], norm_pix=self.config.norm_pix_loss)
        return MethodOutput(loss, {})

    def backbone_spec(self) -> BackboneSpec:
        return backbone_spec(self.backbone, self.info)

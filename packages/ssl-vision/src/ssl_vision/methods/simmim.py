"""SimMIM (Xie et al., 2022, "SimMIM: A Simple Framework for Masked Image Modeling").

As the paper's Fig. 1: a random share of the patches is replaced by a learned mask token before the
encoder -- which therefore processes every position, unlike MAE -- and a one-layer linear head predicts
the raw pixels of each patch from its encoded token; the loss is the L1 distance on the masked patches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ssl_core.losses import masked_l1
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.common import backbone_spec, build_vit_for
from ssl_vision.models.vit import ViTConfig, patchify
from ssl_vision.pretext.masked import MaskedView
from ssl_vision.transforms.views import View, ViewConfig, mae_view


@dataclass
class SimMIMConfig:
    """SimMIM settings (``--set method.<name>=<value>``).

    Args:
        backbone: the ViT (default ViT-tiny with 7-pixel patches, 16 tokens of a 28x28 image; 4-pixel
            patches, 49 tokens, cost 2.8x a training step and 4x a probe on 2 cores).
        mask_ratio: share of masked patches (0.6 in the paper).
        view: the light augmentation (random resized crop and flip).
    """

    backbone: ViTConfig = field(default_factory=lambda: ViTConfig(patch_size=7))
    mask_ratio: float = 0.6
    view: ViewConfig = field(default_factory=mae_view)


class SimMIM(Method):
    """SimMIM: mask tokens in the encoder's input, a linear pixel head, L1 on the masked patches.

    Shapes:
        - batch: ``{"image": (B, C, H, W), "mask": (B, L), ...}``
        - :meth:`embed`: ``(B, C, H, W) -> (B, embed_dim)`` (the encoder on the whole, unmasked image)
    """

    def __init__(self, config: SimMIMConfig, info: ImageInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        self.backbone = build_vit_for(config.backbone, info)
        d = self.backbone.embed_dim
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d))
        self.head = nn.Linear(d, self.backbone.config.patch_size**2 * info.channels)
        nn.init.normal_(self.mask_token, std=0.02)

    def pretext(self) -> MaskedView:
        return MaskedView(View(self.config.view, self.info), self.backbone.num_patches, self.config.mask_ratio)

    def forward(self, batch: dict[str, torch.Tensor]) -> MethodOutput:
        images, mask = batch["image"], batch["mask"]
        tokens = self.backbone.patch_embed(images)  # (B, L, D)
        w = mask[..., None].to(tokens.dtype)  # 1 on masked patches
        tokens = tokens * (1 - w) + self.mask_token * w  # masked patches become the mask token
        features = self.backbone.encode(tokens + self.backbone.pos_embed)[:, 1:]  # patch tokens: (B, L, D)
        target = patchify(images, self.backbone.config.patch_size)
        return MethodOutput(masked_l1(self.head(features), target, mask), {})

    def backbone_spec(self) -> BackboneSpec:
        return backbone_spec(self.backbone, self.info)

"""Audio-MAE (Huang et al., 2022, "Masked Autoencoders that Listen") and Bird-MAE (Rauch et al., 2025,
"Can Masked Autoencoders Also Listen to Birds?").

MAE on log-mel spectrograms: the spectrogram is cut into patches (here 16 mels x 4 frames, see
:mod:`ssl_audio.models.spectrogram`), a high share of them (80%, Audio-MAE's ratio; 75% in image MAE) is
removed at random, the ViT encoder sees only the visible patches, and a light transformer decoder gets the
encoded visible tokens plus a shared learned mask token at every removed position (both with 2-D
sine-cosine positions) and predicts the values of every patch; the loss is the mean squared error on the
removed patches, each target patch normalised by its own mean and variance (``norm_pix_loss``). Audio-MAE's
decoder uses shifted-window local attention; ours is plain global attention (on 100 patches the
difference in cost is nil, and Audio-MAE reports global attention within about a point).

Bird-MAE keeps this pretraining and adds *prototypical probing* of the frozen encoder: learned prototypes
per class matched against the patch tokens by cosine similarity with max pooling
(:func:`ssl_core.eval.prototypical.prototypical_probe`). :func:`ssl_audio.data.prototypes.prototypical_column`
scores it as the ``proto_top1`` column of every run on labelled audio (for backbones with patch tokens).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ssl_audio.info import AudioInfo
from ssl_audio.models.spectrogram import SpectrogramViT, SpecViTConfig, sincos_2d, spec_backbone_spec
from ssl_audio.transforms.views import MaskedClip
from ssl_core.losses import masked_mse
from ssl_core.method import BackboneSpec, Method, MethodOutput


@dataclass
class AudioMAEConfig:
    """Audio-MAE settings (``--set method.<name>=<value>``).

    Args:
        backbone: the spectrogram ViT encoder (16x4 patches of 64 mels x 100 frames: 100 patches, 192-d, 4 blocks).
        decoder_dim: decoder width (512 in Audio-MAE; 128 here).
        decoder_depth: decoder blocks (16 in Audio-MAE; 2 here).
        decoder_heads: decoder attention heads (4).
        mask_ratio: share of removed patches (0.8, Audio-MAE).
        norm_pix_loss: normalise each target patch by its mean and variance (MAE's better setting).
    """

    backbone: SpecViTConfig = field(default_factory=SpecViTConfig)
    decoder_dim: int = 128
    decoder_depth: int = 2
    decoder_heads: int = 4
    mask_ratio: float = 0.8
    norm_pix_loss: bool = True


class AudioMAE(Method):
    """Audio-MAE: encoder on the visible spectrogram patches, light decoder over all positions, MSE on the
    removed patches.

    Shapes:
        - batch: ``{"wave": (B, T), "mask": (B, L), "ids_keep": (B, L_keep), "ids_restore": (B, L)}``
        - :meth:`embed`: ``(B, T) -> (B, embed_dim)`` (the encoder on every patch, tokens averaged)
    """

    def __init__(self, config: AudioMAEConfig, info: AudioInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        c = config
        self.backbone = vit = SpectrogramViT(c.backbone)
        b = c.backbone
        self.n_time = vit.logmel.num_frames(info.num_samples) // b.patch_frames
        self.num_patches = self.n_time * vit.n_freq
        self.decoder_embed = nn.Linear(vit.embed_dim, c.decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.decoder_dim))
        self.register_buffer("decoder_pos", sincos_2d(c.decoder_dim, self.n_time, vit.n_freq)[None], persistent=False)
        self.decoder_blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                c.decoder_dim, c.decoder_heads, 4 * c.decoder_dim, 0.0, "gelu", batch_first=True, norm_first=True
            )
            for _ in range(c.decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(c.decoder_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(c.decoder_dim, b.patch_mels * b.patch_frames)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in [self.decoder_embed, self.decoder_pred, *self.decoder_blocks.modules()]:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def pretext(self) -> MaskedClip:
        return MaskedClip(self.num_patches, self.config.mask_ratio)

    def forward_encoder(self, spec: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
        """Encode the kept patches only: ``(B, n_mels, frames), (B, L_keep) -> (B, L_keep, D)``."""
        tokens = self.backbone.embed_patches(spec)  # (B, L, D) with positions
        visible = tokens.gather(1, ids_keep[..., None].expand(-1, -1, tokens.shape[-1]))
        return self.backbone.encode(visible)

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Predict every patch: ``(B, L_keep, D), (B, L) -> (B, L, patch_mels * patch_frames)``."""
        x = self.decoder_embed(latent)
        b, n_keep, d = x.shape
        masked = self.mask_token.expand(b, ids_restore.shape[1] - n_keep, -1)
        x = torch.cat([x, masked], dim=1).gather(1, ids_restore[..., None].expand(-1, -1, d))  # token order
        x = x + self.decoder_pos
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))

    def forward(self, batch: dict[str, torch.Tensor]) -> MethodOutput:
        spec = self.backbone.spectrogram(batch["wave"])
        if self.backbone.grid(spec)[0] != self.n_time:
            raise ValueError(f"expected clips of {self.info.num_samples} samples, got {batch['wave'].shape[-1]}")
        pred = self.forward_decoder(self.forward_encoder(spec, batch["ids_keep"]), batch["ids_restore"])
        target = self.backbone.patchify(spec)
        loss = masked_mse(pred, target, batch["mask"], norm_pix=self.config.norm_pix_loss)
        return MethodOutput(loss, {"mask_ratio": batch["mask"].float().mean().detach()})

    def backbone_spec(self) -> BackboneSpec:
        return spec_backbone_spec(self.backbone, self.info.num_samples)

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
(:func:`ssl_core.eval.prototypical.prototypical_probe`). :func:`prototypical_column` makes it a probe
column for :attr:`ssl_core.data.DataBundle.extra_probes`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import default_collate

from ssl_audio.info import AudioInfo
from ssl_audio.models.spectrogram import SpectrogramViT, SpecViTConfig, sincos_2d, spec_backbone_spec
from ssl_audio.transforms.views import MaskedClip
from ssl_core.eval.prototypical import prototypical_probe
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


@torch.no_grad()
def _tokens(backbone: SpectrogramViT, inputs: Any, collate: Callable, device: Any, batch_size: int) -> torch.Tensor:
    out = []
    for lo in range(0, len(inputs), batch_size):
        wave = collate([inputs[i] for i in range(lo, min(lo + batch_size, len(inputs)))])
        out.append(backbone.patch_tokens(wave.to(device)).float().cpu())
    return torch.cat(out)


def prototypical_column(
    bundle: Any,
    prototypes_per_class: int = 5,
    steps: int = 300,
    lr: float = 1e-2,
    batch_size: int | None = 256,
    seed: int = 0,
) -> Callable[[str, Callable, Any, Any], float | None]:
    """Bird-MAE's prototypical probe as a probe column: ``bundle.extra_probes["proto_top1"] =
    prototypical_column(bundle)``.

    The returned ``fn(row_name, embed, device, backbone)`` embeds the bundle's ``probe_train`` and
    ``probe_test`` clips into the frozen backbone's patch tokens (:meth:`SpectrogramViT.patch_tokens`) and
    returns the top-1 accuracy of :func:`~ssl_core.eval.prototypical.prototypical_probe` on them; it returns
    ``None`` for rows whose backbone is not a :class:`SpectrogramViT` (the raw input, CNN and waveform
    models). It ignores ``embed`` (which pools the tokens) and uses the whole ``probe_train`` split.

    Args:
        bundle: the :class:`~ssl_core.data.DataBundle` (its probe splits and ``collate_fn``).
        prototypes_per_class, steps, lr, batch_size, seed: as :func:`prototypical_probe` (mini-batches of 256
            keep the ``(B, C, J, T)`` similarities small on CPUs).
    """

    def probe(row_name: str, embed: Callable, device: Any, backbone: Any) -> float | None:
        if not isinstance(backbone, SpectrogramViT) or bundle.probe_train is None or bundle.probe_test is None:
            return None
        collate = bundle.collate_fn or default_collate
        was_training = backbone.training
        backbone.eval()
        try:
            train = _tokens(backbone, bundle.probe_train.inputs, collate, device, 128)
            test = _tokens(backbone, bundle.probe_test.inputs, collate, device, 128)
        finally:
            backbone.train(was_training)
        return prototypical_probe(
            train,
            torch.as_tensor(bundle.probe_train.labels),
            test,
            torch.as_tensor(bundle.probe_test.labels),
            prototypes_per_class=prototypes_per_class,
            steps=steps,
            lr=lr,
            batch_size=batch_size,
            seed=seed,
            device=device,
        )

    return probe

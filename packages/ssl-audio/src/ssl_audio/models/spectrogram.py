"""Spectrogram backbones: a ViT over log-mel patches (Audio-MAE, Bird-MAE, ATST) and BYOL-A's CNN.

Both take raw waveforms ``(B, T)`` and hold their :class:`~ssl_audio.frontend.LogMel` front end, as every
audio backbone (``forward(wave) -> (B, embed_dim)``, ``frames(wave) -> (B, F, embed_dim)``, ``embed_dim``,
``frame_rate``); methods that augment spectrograms call the ``*_spec`` methods on log-mels directly.

Spectrogram ViT (Dosovitskiy et al., 2021; as AST / Audio-MAE, Huang et al., 2022): the log-mel of a clip
(64 mels x 101 frames for 1 s at 16 kHz, trimmed to 100 frames, a multiple of the patch width) is cut into
non-overlapping ``patch_mels`` x ``patch_frames`` patches, each flattened and mapped linearly to ``dim``;
fixed 2-D sine-cosine positions (half of the channels for the time index, half for the frequency index)
are added, and pre-norm transformer blocks follow (no class token: the embedding is the mean of the patch
tokens). Audio-MAE cuts 128 mels x 1024 frames into 16x16 patches (512 tokens); on 1-second clips and
2 CPU cores the default here is 16 mels x 4 frames (4 x 25 = 100 tokens): 40 ms per time column, so
:meth:`SpectrogramViT.frames` (the frequency patches of each column averaged) has 25 frames per second.
ATST (Li et al., 2023) uses patches spanning all 64 mels and 4 frames (``patch_mels=64``): one token per
40 ms, a transformer over frames. Tokens are ordered time-major: token ``t * n_freq + f``.

BYOL-A CNN (Niizumi et al., 2021, Sec. 3.4, the "AudioNTT2020" encoder): three blocks of 3x3 convolution,
batch norm, ReLU and 2x2 max pooling on the ``(1, n_mels, frames)`` log-mel; the ``channels x n_mels/8``
features of each of the ``frames/8`` time steps go through a two-layer MLP (ReLU, dropout), and the clip
embedding is the temporal mean plus the temporal maximum of those frame features. The paper uses 64
channels and 2048-d (v2) or 512-d (v1) features; the default here is 32 channels and 256-d, 12.5 frames
per second of :meth:`BYOLACNN.frames`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ssl_audio.frontend import LogMel, LogMelConfig
from ssl_audio.info import AudioInfo
from ssl_core.errors import ConfigError


def sincos_2d(dim: int, n_time: int, n_freq: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine positions of a time-major ``n_time`` x ``n_freq`` patch grid (MAE's, with a
    rectangular grid): the first half of the channels encodes the time index, the second the frequency
    index, each as ``[sin(p w_k), cos(p w_k)]`` with ``w_k = 10000^(-k / (dim/4))``.

    Shapes:
        - output: ``(n_time * n_freq, dim)``
    """
    if dim % 4:
        raise ConfigError(f"the 2-D sine-cosine embedding needs a width divisible by 4, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))
    t, f = torch.meshgrid(torch.arange(n_time).double(), torch.arange(n_freq).double(), indexing="ij")

    def encode(p: torch.Tensor) -> torch.Tensor:
        angles = p.flatten()[:, None] * omega[None]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    return torch.cat([encode(t), encode(f)], dim=1).float()


@dataclass
class SpecViTConfig:
    """Shape of a :class:`SpectrogramViT` (``--set method.backbone.<name>=<value>``).

    Args:
        frontend: the log-mel front end (64 mels, 100 frames per second, per-clip standardisation).
        sample_rate: of the input waveforms.
        patch_mels: patch height in mel bands; must divide ``frontend.n_mels`` (16: 4 frequency patches).
        patch_frames: patch width in frames (4: 40 ms).
        dim: token width, the embedding size (192, as ViT-tiny).
        depth: transformer blocks (4; ViT-tiny has 12).
        heads: attention heads (3).
        mlp_ratio: hidden width of each block's MLP relative to ``dim``.
    """

    frontend: LogMelConfig = field(default_factory=LogMelConfig)
    sample_rate: int = 16_000
    patch_mels: int = 16
    patch_frames: int = 4
    dim: int = 192
    depth: int = 4
    heads: int = 3
    mlp_ratio: float = 4.0

    def __post_init__(self) -> None:
        if isinstance(self.frontend, dict):
            self.frontend = LogMelConfig(**self.frontend)
        if self.patch_mels < 1 or self.patch_frames < 1 or self.frontend.n_mels % self.patch_mels:
            raise ConfigError(
                f"patch_mels ({self.patch_mels}) must divide n_mels ({self.frontend.n_mels}); patch_frames must be >= 1"
            )
        if self.dim % self.heads or self.dim % 4:
            raise ConfigError(f"dim ({self.dim}) must be divisible by heads ({self.heads}) and by 4")


class SpectrogramViT(nn.Module):
    """A ViT over log-mel patches that takes waveforms (see the module docstring).

    Shapes:
        - :meth:`spectrogram`: ``(B, T) -> (B, n_mels, frames)`` with frames trimmed to a multiple of
          ``patch_frames``
        - :meth:`patchify`: ``(B, n_mels, frames) -> (B, L, patch_mels * patch_frames)``, ``L = n_time * n_freq``
        - :meth:`embed_patches`: ``(B, n_mels, frames) -> (B, L, dim)`` with positions
        - :meth:`encode`: ``(B, n, dim) -> (B, n, dim)`` (any subset of tokens)
        - :meth:`forward`: ``(B, T) -> (B, dim)``; :meth:`frames`: ``(B, T) -> (B, n_time, dim)``;
          :meth:`patch_tokens`: ``(B, T) -> (B, L, dim)``
    """

    def __init__(self, config: SpecViTConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or SpecViTConfig()
        self.logmel = LogMel(c.frontend, c.sample_rate)
        self.embed_dim = c.dim
        self.n_freq = c.frontend.n_mels // c.patch_mels
        self.frame_rate = 1000.0 / (c.frontend.hop_ms * c.patch_frames)
        self.patch_proj = nn.Linear(c.patch_mels * c.patch_frames, c.dim)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                c.dim, c.heads, int(c.dim * c.mlp_ratio), 0.0, "gelu", batch_first=True, norm_first=True
            )
            for _ in range(c.depth)
        )
        self.norm = nn.LayerNorm(c.dim, eps=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    # --- spectrogram and patches -------------------------------------------------------------------
    def spectrogram(self, wave: torch.Tensor) -> torch.Tensor:
        """Log-mel of the waveforms, frames trimmed to a multiple of ``patch_frames``."""
        spec = self.logmel(wave)
        return spec[..., : spec.shape[-1] // self.config.patch_frames * self.config.patch_frames]

    def grid(self, spec: torch.Tensor) -> tuple[int, int]:
        """``(n_time, n_freq)`` patches of a spectrogram (trailing frames that fill no patch are dropped)."""
        return spec.shape[-1] // self.config.patch_frames, self.n_freq

    def patchify(self, spec: torch.Tensor) -> torch.Tensor:
        """Flattened patches, time-major; each patch's values in (mel, frame) order."""
        b, m = spec.shape[:2]
        pm, pf = self.config.patch_mels, self.config.patch_frames
        n_t, n_f = self.grid(spec)
        x = spec[..., : n_t * pf].reshape(b, n_f, pm, n_t, pf)
        return x.permute(0, 3, 1, 2, 4).reshape(b, n_t * n_f, pm * pf)

    def pos_embed(self, n_time: int) -> torch.Tensor:
        """``(1, n_time * n_freq, dim)`` positions."""
        return sincos_2d(self.embed_dim, n_time, self.n_freq).to(self.patch_proj.weight)[None]

    def embed_patches(self, spec: torch.Tensor) -> torch.Tensor:
        """Patch tokens with positions, before the blocks."""
        return self.patch_proj(self.patchify(spec)) + self.pos_embed(self.grid(spec)[0])

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Run the blocks and the final norm on position-embedded tokens (all of them or a subset)."""
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)

    # --- spectrogram entry points ------------------------------------------------------------------
    def tokens_spec(self, spec: torch.Tensor) -> torch.Tensor:
        """Output tokens of a spectrogram, ``(B, L, dim)``."""
        return self.encode(self.embed_patches(spec))

    def frames_of_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Average the frequency patches of each time column: ``(B, n_time * n_freq, D) -> (B, n_time, D)``."""
        b, n, d = tokens.shape
        return tokens.reshape(b, n // self.n_freq, self.n_freq, d).mean(2)

    def forward_spec(self, spec: torch.Tensor) -> torch.Tensor:
        """Clip embedding of a spectrogram, ``(B, dim)``: the mean of the output tokens."""
        return self.tokens_spec(spec).mean(1)

    # --- the audio backbone protocol ---------------------------------------------------------------
    def patch_tokens(self, wave: torch.Tensor) -> torch.Tensor:
        """Output patch tokens of waveforms, ``(B, L, dim)`` (the prototypical probe's input)."""
        return self.tokens_spec(self.spectrogram(wave))

    def frames(self, wave: torch.Tensor) -> torch.Tensor:
        return self.frames_of_tokens(self.patch_tokens(wave))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.patch_tokens(wave).mean(1)


@dataclass
class BYOLACNNConfig:
    """Shape of a :class:`BYOLACNN` (``--set method.backbone.<name>=<value>``).

    Args:
        frontend: the log-mel front end; ``n_mels`` must be a multiple of 8.
        sample_rate: of the input waveforms.
        channels: convolution channels of each of the three blocks (64 in the paper; 32 here, 3.5x cheaper on CPUs).
        dim: width of the frame MLP, the embedding size (256; BYOL-A: 512 in v1, 2048 in v2).
        dropout: dropout between the MLP's layers (0.3).
    """

    frontend: LogMelConfig = field(default_factory=LogMelConfig)
    sample_rate: int = 16_000
    channels: int = 32
    dim: int = 256
    dropout: float = 0.3

    def __post_init__(self) -> None:
        if isinstance(self.frontend, dict):
            self.frontend = LogMelConfig(**self.frontend)
        if self.frontend.n_mels % 8:
            raise ConfigError("BYOL-A's CNN halves the mel axis three times: n_mels must be a multiple of 8")


class BYOLACNN(nn.Module):
    """BYOL-A's convolutional encoder (see the module docstring).

    Shapes:
        - :meth:`frames_spec`: ``(B, n_mels, frames) -> (B, frames // 8, dim)``
        - :meth:`forward_spec`: ``(B, n_mels, frames) -> (B, dim)`` (temporal mean + max)
        - :meth:`forward`: ``(B, T) -> (B, dim)``; :meth:`frames`: ``(B, T) -> (B, F, dim)``
    """

    def __init__(self, config: BYOLACNNConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or BYOLACNNConfig()
        self.logmel = LogMel(c.frontend, c.sample_rate)
        self.embed_dim = c.dim
        self.frame_rate = 1000.0 / (c.frontend.hop_ms * 8)
        layers: list[nn.Module] = []
        for k in range(3):
            layers += [
                nn.Conv2d(1 if k == 0 else c.channels, c.channels, 3, padding=1),
                nn.BatchNorm2d(c.channels),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Sequential(
            nn.Linear(c.channels * (c.frontend.n_mels // 8), c.dim),
            nn.ReLU(inplace=True),
            nn.Dropout(c.dropout),
            nn.Linear(c.dim, c.dim),
            nn.ReLU(inplace=True),
        )

    def spectrogram(self, wave: torch.Tensor) -> torch.Tensor:
        return self.logmel(wave)

    def frames_spec(self, spec: torch.Tensor) -> torch.Tensor:
        x = self.features(spec[:, None])  # (B, C, n_mels/8, frames/8)
        x = x.permute(0, 3, 1, 2).flatten(2)  # (B, frames/8, C * n_mels/8)
        return self.fc(x)

    def forward_spec(self, spec: torch.Tensor) -> torch.Tensor:
        x = self.frames_spec(spec)
        return x.mean(1) + x.amax(1)

    def frames(self, wave: torch.Tensor) -> torch.Tensor:
        return self.frames_spec(self.logmel(wave))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.forward_spec(self.logmel(wave))


def _plain(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def build_spec_vit(config: dict[str, Any]) -> SpectrogramViT:
    """Builder for ``modality.backbones["spec_vit"]``: ``config`` holds :class:`SpecViTConfig`'s fields
    (``frontend`` as a dict of :class:`~ssl_audio.frontend.LogMelConfig`'s)."""
    return SpectrogramViT(SpecViTConfig(**config))


def build_byola_cnn(config: dict[str, Any]) -> BYOLACNN:
    """Builder for ``modality.backbones["byola_cnn"]``: ``config`` holds :class:`BYOLACNNConfig`'s fields."""
    return BYOLACNN(BYOLACNNConfig(**config))


def spec_backbone_spec(backbone: SpectrogramViT | BYOLACNN, num_samples: int = 16_000):
    """The :class:`~ssl_core.method.BackboneSpec` of a spectrogram backbone (name, rebuild config, input)."""
    from ssl_core.method import BackboneSpec

    name = "spec_vit" if isinstance(backbone, SpectrogramViT) else "byola_cnn"
    return BackboneSpec(
        name=name,
        config=_plain(backbone.config),
        embed_dim=backbone.embed_dim,
        input=AudioInfo(backbone.config.sample_rate, num_samples).backbone_input(
            frontend="log-mel inside the backbone"
        ),
    )

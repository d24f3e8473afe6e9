"""The w2v-BERT backbone (Chung et al., 2021, Sec. 2 and Fig. 1): log-mel front end, convolutional feature
encoder, contrastive module and masked-prediction module, the last two stacks of conformer blocks
(``torchaudio.models.Conformer``: half-step feed-forward, self-attention, depthwise convolution module,
half-step feed-forward, LayerNorm; Gulati et al., 2020).

waveform ``(B, T)`` -> log-mel ``(B, n_mels, 101)`` (100 frames/s, per-clip standardised) -> feature encoder: two
3x3 Conv2d with stride (2, 2) and ReLU, 4x fewer frames (25 frames/s: 26 for a 1 s clip), channels x bands
flattened and LayerNormed ``(B, F, C)`` -> contrastive module: masked frames replaced by random vectors, linear
projection to ``D``, conformer blocks -> context vectors ``(B, F, D)`` -> masked-prediction module: conformer blocks
-> ``(B, F, D)``, the representation kept for downstream tasks (its mean over frames is the clip embedding).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torchaudio.models import Conformer

from ssl_audio.frontend import LogMel, LogMelConfig
from ssl_core.errors import ConfigError


@dataclass
class ConformerBackboneConfig:
    """w2v-BERT backbone architecture (small CPU defaults; the paper's XL has 1024-d, 8 + 16 blocks).

    Args:
        n_mels: log-mel bands of the front end (the paper: 80).
        conv_channels: channels of the two subsampling convolutions; the feature size is
            ``conv_channels * ceil(ceil(n_mels / 2) / 2)``.
        hidden_size: conformer width ``D``.
        contrastive_layers: conformer blocks of the contrastive module.
        mlm_layers: conformer blocks of the masked-prediction module.
        num_heads: attention heads.
        ffn_dim: feed-forward width (4 D).
        conv_kernel: depthwise convolution kernel of the conformer blocks (frames at 25 frames/s).
        dropout: dropout in the conformer blocks.
        sample_rate: waveform sample rate.
    """

    n_mels: int = 64
    conv_channels: int = 32
    hidden_size: int = 144
    contrastive_layers: int = 2
    mlm_layers: int = 2
    num_heads: int = 4
    ffn_dim: int = 576
    conv_kernel: int = 15
    dropout: float = 0.1
    sample_rate: int = 16_000

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})")
        if self.conv_kernel % 2 == 0:
            raise ConfigError(f"conv_kernel must be odd (torchaudio's Conformer), got {self.conv_kernel}")
        if min(self.contrastive_layers, self.mlm_layers) < 1:
            raise ConfigError("contrastive_layers and mlm_layers must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready keyword arguments of :func:`build_w2v_bert`."""
        return asdict(self)

    @property
    def feature_dim(self) -> int:
        """Size ``C`` of the feature encoder's output frames."""
        return self.conv_channels * (((self.n_mels + 1) // 2 + 1) // 2)


class W2vBertBackbone(nn.Module):
    """Feature encoder + contrastive module + masked-prediction module on raw waveforms.

    Shapes:
        - wave: ``(B, T)`` float32 in [-1, 1]
        - :meth:`extract_features`: ``(B, T) -> (B, F, C)`` (LayerNormed; the quantizer's input)
        - :meth:`contrast`: ``(B, F, C) -> (B, F, D)`` context vectors (masked frames replaced by noise)
        - :meth:`mlm_encode`: ``(B, F, D) -> (B, F, D)``
        - :meth:`frames`: ``(B, T) -> (B, F, D)``; :meth:`forward`: ``(B, T) -> (B, D)``
    """

    def __init__(self, config: ConformerBackboneConfig) -> None:
        super().__init__()
        self.config = c = config
        self.embed_dim = c.hidden_size
        self.logmel = LogMel(LogMelConfig(n_mels=c.n_mels), c.sample_rate)
        self.frame_rate = c.sample_rate / self.logmel.hop_length / 4
        ch = c.conv_channels
        self.subsample = nn.Sequential(
            nn.Conv2d(1, ch, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(ch, ch, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.feature_dim = feat = c.feature_dim
        self.feature_norm = nn.LayerNorm(feat)
        self.input_proj = nn.Linear(feat, c.hidden_size)
        self.contrastive = Conformer(
            c.hidden_size, c.num_heads, c.ffn_dim, c.contrastive_layers, c.conv_kernel, c.dropout
        )
        self.mlm = Conformer(c.hidden_size, c.num_heads, c.ffn_dim, c.mlm_layers, c.conv_kernel, c.dropout)

    def extract_features(self, wave: torch.Tensor) -> torch.Tensor:
        """Feature encoder: waveform -> log-mel -> 4x subsampling convolutions -> ``(B, F, C)``."""
        x = self.subsample(self.logmel(wave)[:, None])  # (B, ch, mels / 4, F)
        b, ch, m, f = x.shape
        return self.feature_norm(x.permute(0, 3, 1, 2).reshape(b, f, ch * m))

    @staticmethod
    def _lengths(x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0],), x.shape[1], dtype=torch.long, device=x.device)

    def contrast(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Contrastive module. ``mask`` ``(B, F)`` bool: frames replaced by standard normal random vectors (the
        paper's masking; the features are LayerNormed, so noise and features have the same scale)."""
        if mask is not None:
            features = torch.where(mask[..., None], torch.randn_like(features), features)
        x = self.input_proj(features)
        return self.contrastive(x, self._lengths(x))[0]

    def mlm_encode(self, context: torch.Tensor) -> torch.Tensor:
        """Masked-prediction module on the context vectors."""
        return self.mlm(context, self._lengths(context))[0]

    def frames(self, wave: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` -> ``(B, F, D)``: the masked-prediction module's output, nothing masked."""
        return self.mlm_encode(self.contrast(self.extract_features(wave)))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` -> ``(B, D)``: the mean of :meth:`frames` over time."""
        return self.frames(wave).mean(dim=1)


def build_w2v_bert(config: dict[str, Any]) -> W2vBertBackbone:
    """Builder for ``modality.backbones["w2v_bert"]``: ``config`` is :meth:`ConformerBackboneConfig.to_dict`."""
    return W2vBertBackbone(ConformerBackboneConfig(**config))

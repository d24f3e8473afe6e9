"""The wav2vec 2.0 backbone (Baevski et al., 2020), laid out parameter for parameter as Hugging Face's
``Wav2Vec2Model`` / ``HubertModel`` (post-LN encoder, ``do_stable_layer_norm=False``).

waveform ``(B, T)`` -> conv feature encoder (group norm on the first layer, GELU) -> ``(B, F, C)`` features ->
feature projection (LayerNorm, Linear, dropout) -> ``(B, F, D)`` -> masked frames replaced by the learned
``masked_spec_embed`` -> + convolutional positional embedding (weight-normed grouped conv, GELU) -> LayerNorm ->
post-LN transformer layers -> ``(B, F, D)`` contextual frames.

Every submodule has the name and the parameter shapes of its Hugging Face counterpart, so our ``state_dict`` is
a ``Wav2Vec2Model`` (or ``HubertModel``) state dict as it is, key for key (see :mod:`ssl_audio.export`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.errors import ConfigError

MODEL_TYPES = ("wav2vec2", "hubert")


@dataclass
class Wav2Vec2BackboneConfig:
    """The backbone's architecture (Hugging Face ``Wav2Vec2Config`` names; small CPU defaults).

    Args:
        conv_dim: channels of each conv layer of the feature encoder (512 x 7 in the paper).
        conv_kernel: their kernel sizes.
        conv_stride: their strides; the product (320) sets the frame rate: 16000 / 320 = 50 frames/s.
        conv_bias: conv layers with biases (HF: False).
        hidden_size: transformer width ``D`` (768 in BASE).
        num_hidden_layers: transformer layers (12 in BASE).
        num_attention_heads: attention heads (12 in BASE).
        intermediate_size: feed-forward width (3072 in BASE).
        num_conv_pos_embeddings: kernel of the positional conv (128 in BASE, for utterances of many seconds;
            16 = 0.32 s suits our 1 s clips).
        num_conv_pos_embedding_groups: its groups (16).
        hidden_dropout: dropout after attention / feed-forward and on the encoder input (0.1).
        attention_dropout: dropout on attention weights (0.1).
        activation_dropout: dropout inside the feed-forward (0.0 here, 0.1 in HF's default).
        feat_proj_dropout: dropout after the feature projection (0.1 in the paper).
        layer_norm_eps: LayerNorm epsilon.
        sample_rate: waveform sample rate, for :attr:`Wav2Vec2Backbone.frame_rate`.
        model_type: ``"wav2vec2"`` or ``"hubert"``: which Hugging Face model the export writes (same layout).
    """

    conv_dim: list[int] = field(default_factory=lambda: [128] * 7)
    conv_kernel: list[int] = field(default_factory=lambda: [10, 3, 3, 3, 3, 2, 2])
    conv_stride: list[int] = field(default_factory=lambda: [5, 2, 2, 2, 2, 2, 2])
    conv_bias: bool = False
    hidden_size: int = 192
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 768
    num_conv_pos_embeddings: int = 16
    num_conv_pos_embedding_groups: int = 16
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    feat_proj_dropout: float = 0.1
    layer_norm_eps: float = 1e-5
    sample_rate: int = 16000
    model_type: str = "wav2vec2"

    def __post_init__(self) -> None:
        self.conv_dim, self.conv_kernel, self.conv_stride = (
            list(self.conv_dim),
            list(self.conv_kernel),
            list(self.conv_stride),
        )
        if not (len(self.conv_dim) == len(self.conv_kernel) == len(self.conv_stride) >= 1):
            raise ConfigError(
                "conv_dim, conv_kernel and conv_stride need one entry per conv layer, got "
                f"{self.conv_dim}, {self.conv_kernel}, {self.conv_stride}"
            )
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})"
            )
        if self.hidden_size % self.num_conv_pos_embedding_groups:
            raise ConfigError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_conv_pos_embedding_groups "
                f"({self.num_conv_pos_embedding_groups})"
            )
        if self.model_type not in MODEL_TYPES:
            raise ConfigError(f"model_type must be one of {MODEL_TYPES}, got {self.model_type!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready keyword arguments of :func:`build_wav2vec2`."""
        return asdict(self)

    def num_frames(self, num_samples: int) -> int:
        """Frames the feature encoder makes of ``num_samples`` samples (49 for 1 s at 16 kHz)."""
        n = num_samples
        for k, s in zip(self.conv_kernel, self.conv_stride, strict=True):
            n = (n - k) // s + 1
        return n


class _ConvLayer(nn.Module):
    """Conv1d (+ per-channel GroupNorm on the first layer) + GELU: HF's ``Wav2Vec2{Group,No}NormConvLayer``."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, bias: bool, group_norm: bool) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel_size=kernel, stride=stride, bias=bias)
        if group_norm:
            self.layer_norm = nn.GroupNorm(num_groups=c_out, num_channels=c_out, affine=True)
        nn.init.kaiming_normal_(self.conv.weight)
        if bias:
            k = math.sqrt(1 / (c_in * kernel))
            nn.init.uniform_(self.conv.bias, -k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if hasattr(self, "layer_norm"):
            x = self.layer_norm(x)
        return F.gelu(x)


class _FeatureEncoder(nn.Module):
    """``(B, T)`` waveform -> ``(B, C, F)`` conv features (HF ``Wav2Vec2FeatureEncoder``, group norm)."""

    def __init__(self, c: Wav2Vec2BackboneConfig) -> None:
        super().__init__()
        dims = [1, *c.conv_dim]
        self.conv_layers = nn.ModuleList(
            _ConvLayer(dims[i], dims[i + 1], c.conv_kernel[i], c.conv_stride[i], c.conv_bias, group_norm=i == 0)
            for i in range(len(c.conv_dim))
        )

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = wave[:, None]
        for layer in self.conv_layers:
            x = layer(x)
        return x


class _FeatureProjection(nn.Module):
    """LayerNorm + Linear + dropout (HF ``Wav2Vec2FeatureProjection``; ``HubertFeatureProjection`` with
    ``feat_proj_layer_norm=True``)."""

    def __init__(self, c: Wav2Vec2BackboneConfig) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(c.conv_dim[-1], eps=c.layer_norm_eps)
        self.projection = nn.Linear(c.conv_dim[-1], c.hidden_size)
        self.dropout = nn.Dropout(c.feat_proj_dropout)
        k = math.sqrt(1 / c.conv_dim[-1])
        nn.init.uniform_(self.projection.weight, -k, k)
        nn.init.uniform_(self.projection.bias, -k, k)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        normed = self.layer_norm(features)
        return self.dropout(self.projection(normed)), normed


class _PositionalConvEmbedding(nn.Module):
    """Weight-normed grouped conv over time + GELU; for an even kernel the last output frame is dropped (HF's
    ``Wav2Vec2SamePadLayer``), so the output has as many frames as the input."""

    def __init__(self, c: Wav2Vec2BackboneConfig) -> None:
        super().__init__()
        k, d = c.num_conv_pos_embeddings, c.hidden_size
        conv = nn.Conv1d(d, d, kernel_size=k, padding=k // 2, groups=c.num_conv_pos_embedding_groups)
        nn.init.normal_(conv.weight, mean=0.0, std=2 * math.sqrt(1 / (k * d)))
        nn.init.zeros_(conv.bias)
        # weight = g * v / ||v|| with the norm over all dims but the kernel's (dim=2), as HF and fairseq
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        self.num_pad_remove = 1 if k % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x.transpose(1, 2))
        if self.num_pad_remove:
            y = y[:, :, : -self.num_pad_remove]
        return F.gelu(y).transpose(1, 2)


class _Attention(nn.Module):
    """Multi-head self-attention with HF's ``q_proj / k_proj / v_proj / out_proj``, computed by
    ``F.scaled_dot_product_attention`` (fused kernels)."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, self.heads, d // self.heads).transpose(1, 2)

        y = F.scaled_dot_product_attention(
            split(self.q_proj(x)),
            split(self.k_proj(x)),
            split(self.v_proj(x)),
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out_proj(y.transpose(1, 2).reshape(b, n, d))


class _FeedForward(nn.Module):
    def __init__(self, c: Wav2Vec2BackboneConfig) -> None:
        super().__init__()
        self.intermediate_dropout = nn.Dropout(c.activation_dropout)
        self.intermediate_dense = nn.Linear(c.hidden_size, c.intermediate_size)
        self.output_dense = nn.Linear(c.intermediate_size, c.hidden_size)
        self.output_dropout = nn.Dropout(c.hidden_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.intermediate_dropout(F.gelu(self.intermediate_dense(x)))
        return self.output_dropout(self.output_dense(x))


class _EncoderLayer(nn.Module):
    """Post-LN layer: ``x = LN(x + drop(attn(x)))``, ``x = LN(x + ffn(x))`` (HF ``Wav2Vec2EncoderLayer``)."""

    def __init__(self, c: Wav2Vec2BackboneConfig) -> None:
        super().__init__()
        self.attention = _Attention(c.hidden_size, c.num_attention_heads, c.attention_dropout)
        self.dropout = nn.Dropout(c.hidden_dropout)
        self.layer_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.feed_forward = _FeedForward(c)
        self.final_layer_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.layer_norm(x + self.dropout(self.attention(x, attn_mask)))
        return self.final_layer_norm(x + self.feed_forward(x))


class _Encoder(nn.Module):
    """pos conv + LayerNorm + dropout + the layers (HF ``Wav2Vec2Encoder``)."""

    def __init__(self, c: Wav2Vec2BackboneConfig) -> None:
        super().__init__()
        self.pos_conv_embed = _PositionalConvEmbedding(c)
        self.layer_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout)
        self.layers = nn.ModuleList(_EncoderLayer(c) for _ in range(c.num_hidden_layers))


class Wav2Vec2Backbone(nn.Module):
    """wav2vec 2.0 / HuBERT backbone on raw waveforms.

    Shapes:
        - wave: ``(B, T)`` float32 in [-1, 1] at ``config.sample_rate``
        - :meth:`extract_features`: ``(B, F, C)`` conv features (``C = conv_dim[-1]``)
        - :meth:`project`: ``(B, F, C) -> ((B, F, D), (B, F, C))``
        - :meth:`encode`: ``(B, F, D) -> (B, F, D)``
        - :meth:`frames`: ``(B, T) -> (B, F, D)``; :meth:`forward`: ``(B, T) -> (B, D)``
    """

    def __init__(self, config: Wav2Vec2BackboneConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_dim = config.hidden_size
        self.frame_rate = config.sample_rate / math.prod(config.conv_stride)
        self.feature_extractor = _FeatureEncoder(config)
        self.feature_projection = _FeatureProjection(config)
        self.masked_spec_embed = nn.Parameter(torch.empty(config.hidden_size).uniform_())
        self.encoder = _Encoder(config)

    def extract_features(self, wave: torch.Tensor) -> torch.Tensor:
        """Conv feature encoder: ``(B, T)`` waveform -> ``(B, F, C)`` features (before the projection's
        LayerNorm; what wav2vec 2.0 quantizes, through :meth:`project`'s normed output)."""
        return self.feature_extractor(wave).transpose(1, 2)

    def project(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Feature projection, split as HF does: returns ``(hidden_in (B, F, D), normed_features (B, F, C))``,
        the transformer's input and the LayerNormed features (the quantizer's input in wav2vec 2.0)."""
        return self.feature_projection(features)

    def encode(
        self, hidden_in: torch.Tensor, mask: torch.Tensor | None = None, output_hidden_states: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Contextualise projected frames.

        Args:
            hidden_in: ``(B, F, D)``, :meth:`project`'s first output.
            mask: ``(B, F)`` bool, True on frames replaced by the learned ``masked_spec_embed`` (None: none).
            output_hidden_states: also return every layer's frames.

        Returns:
            the last layer's ``(B, F, D)`` frames; with ``output_hidden_states``, the pair ``(last, hidden_states)``
            where ``hidden_states`` has ``num_hidden_layers + 1`` entries as HF's ``HubertModel``: index 0 the
            transformer's input (after positional conv, LayerNorm), index ``i`` the output of layer ``i``
            (the last one is ``last``).
        """
        x = hidden_in
        if mask is not None:
            x = torch.where(mask[..., None], self.masked_spec_embed.to(x.dtype), x)
        enc = self.encoder
        x = enc.dropout(enc.layer_norm(x + enc.pos_conv_embed(x)))
        states = [x]
        for layer in enc.layers:
            x = layer(x)
            states.append(x)
        return (x, tuple(states)) if output_hidden_states else x

    def frames(self, wave: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` -> ``(B, F, D)``: the last layer's frames, nothing masked."""
        hidden_in, _ = self.project(self.extract_features(wave))
        return self.encode(hidden_in)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` -> ``(B, D)``: the mean of :meth:`frames` over time (the utterance embedding)."""
        return self.frames(wave).mean(dim=1)


def build_wav2vec2(config: dict[str, Any]) -> Wav2Vec2Backbone:
    """Builder for ``modality.backbones["wav2vec2"]``: ``config`` is :meth:`Wav2Vec2BackboneConfig.to_dict`."""
    return Wav2Vec2Backbone(Wav2Vec2BackboneConfig(**config))

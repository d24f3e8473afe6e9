"""Sequence backbones built from ``transformers`` configs (random initialisation, nothing downloaded).

One wrapper, :class:`TextEncoder`, holds the model and turns a padded batch into token states and into
mean-pooled sentence embeddings; the architecture is data (``arch``), not a subclass.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ssl_core.errors import ConfigError
from ssl_text.tokenization import CLS_ID, PAD_ID, SEP_ID

ARCHS = ("bert", "roberta", "electra", "gpt2", "t5")


@dataclass
class TextBackboneConfig:
    """A transformer sized for 2 CPU cores by default (2 layers of width 128: 0.4 M parameters besides the
    embeddings).

    Args:
        arch: ``bert`` (Devlin et al., 2019), ``roberta`` (Liu et al., 2019), ``electra`` (Clark et al., 2020),
            ``gpt2`` (Radford et al., 2019; causal) or ``t5`` (Raffel et al., 2020; encoder-decoder).
        hidden_size: model width.
        num_layers: transformer blocks (encoder and decoder each, for T5).
        num_heads: attention heads.
        intermediate_size: feed-forward width.
        dropout: dropout of hidden states and attention.
    """

    arch: str = "bert"
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 512
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"method.backbone.arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"method.backbone.hidden_size={self.hidden_size} must be a multiple of num_heads={self.num_heads}"
            )


def hf_config(cfg: TextBackboneConfig, vocab_size: int, max_length: int):
    """The ``transformers`` configuration of ``cfg`` for a vocabulary and sequence length."""
    from transformers import BertConfig, ElectraConfig, GPT2Config, RobertaConfig, T5Config

    common = dict(vocab_size=vocab_size, pad_token_id=PAD_ID, bos_token_id=CLS_ID, eos_token_id=SEP_ID)
    enc = dict(
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size,
        hidden_dropout_prob=cfg.dropout,
        attention_probs_dropout_prob=cfg.dropout,
        **common,
    )
    if cfg.arch == "bert":
        return BertConfig(max_position_embeddings=max_length, **enc)
    if cfg.arch == "roberta":  # RoBERTa numbers positions from pad_token_id + 1
        return RobertaConfig(max_position_embeddings=max_length + PAD_ID + 2, **enc)
    if cfg.arch == "electra":
        return ElectraConfig(max_position_embeddings=max_length, embedding_size=cfg.hidden_size, **enc)
    if cfg.arch == "gpt2":
        return GPT2Config(
            n_embd=cfg.hidden_size,
            n_layer=cfg.num_layers,
            n_head=cfg.num_heads,
            n_inner=cfg.intermediate_size,
            n_positions=max_length,
            resid_pdrop=cfg.dropout,
            embd_pdrop=cfg.dropout,
            attn_pdrop=cfg.dropout,
            **common,
        )
    return T5Config(
        d_model=cfg.hidden_size,
        d_kv=cfg.hidden_size // cfg.num_heads,
        d_ff=cfg.intermediate_size,
        num_layers=cfg.num_layers,
        num_decoder_layers=cfg.num_layers,
        num_heads=cfg.num_heads,
        dropout_rate=cfg.dropout,
        decoder_start_token_id=PAD_ID,  # T5 starts decoding from the pad token
        **common,
    )


def mean_pool(states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token states over the real (unpadded) tokens.

    Shapes:
        - states: ``(B, L, D)``, attention_mask: ``(B, L)``; output: ``(B, D)``
    """
    m = attention_mask.unsqueeze(-1).to(states.dtype)
    return (states * m).sum(1) / m.sum(1).clamp_min(1)


class TextEncoder(nn.Module):
    """A ``transformers`` base model (no task head) and its sentence embedding.

    ``forward`` returns the mean-pooled last hidden states (of the encoder, for T5): the embedding the probes
    score and exports give. :meth:`states` gives the per-token states for heads.

    Shapes:
        - forward: ``{"input_ids": (B, L), "attention_mask": (B, L)} -> (B, hidden_size)``
    """

    def __init__(self, config: TextBackboneConfig, vocab_size: int, max_length: int) -> None:
        super().__init__()
        from transformers import AutoModel

        self.config, self.vocab_size, self.max_length = config, vocab_size, max_length
        hf = hf_config(config, vocab_size, max_length)
        kw = {"add_pooling_layer": False} if config.arch in ("bert", "roberta") else {}
        self.model = AutoModel.from_config(hf, **kw)
        self.embed_dim = config.hidden_size

    @property
    def is_encoder_decoder(self) -> bool:
        return self.config.arch == "t5"

    def states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kw: Any) -> torch.Tensor:
        """Last hidden states of every token (the encoder's, for T5). Shapes: ``(B, L) -> (B, L, D)``."""
        model = self.model.get_encoder() if self.is_encoder_decoder else self.model
        return model(input_ids=input_ids, attention_mask=attention_mask, **kw).last_hidden_state

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return mean_pool(self.states(batch["input_ids"], batch["attention_mask"]), batch["attention_mask"])

    def input_embeddings(self) -> nn.Embedding:
        """The token embedding matrix (tied to the output layer of language-model heads)."""
        return self.model.get_input_embeddings()

    def spec_config(self) -> dict[str, Any]:
        """JSON-serialisable arguments that rebuild this module (see :func:`build_text_encoder`)."""
        return {**dataclasses.asdict(self.config), "vocab_size": self.vocab_size, "max_length": self.max_length}


def build_text_encoder(config: dict[str, Any]) -> TextEncoder:
    """Registry builder: a :class:`TextEncoder` from the ``config`` dict of an export."""
    config = dict(config)
    vocab, length = config.pop("vocab_size"), config.pop("max_length")
    return TextEncoder(TextBackboneConfig(**config), vocab, length)

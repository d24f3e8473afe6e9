"""What every text method shares: the backbone from the data's vocabulary, its export spec, batching."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ssl_core.method import BackboneSpec, Method
from ssl_text.data.text import TextInfo, TextSample, pad_batch
from ssl_text.models.backbones import TextBackboneConfig, TextEncoder
from ssl_text.tokenization import PAD_ID

IGNORE_INDEX = -100  # target of positions without a loss (F.cross_entropy's default ignore_index)


def token_ids(sample: TextSample) -> list[int]:
    """The pretext of methods that corrupt whole batches later: the sample's token ids."""
    return sample.ids


def pad_targets(seqs: Sequence[Sequence[int]], length: int | None = None, value: int = IGNORE_INDEX) -> torch.Tensor:
    """Right-pad per-token targets with ``value`` (ignored by the loss). Shapes: ``-> (B, L)``."""
    length = max(len(s) for s in seqs) if length is None else length
    out = torch.full((len(seqs), length), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    return out


class TextMethod(Method):
    """Base of the text methods: ``self.backbone`` is a :class:`TextEncoder` over the data's vocabulary.

    Subclasses set ``arch`` expectations through their config's ``backbone`` and implement ``forward``.
    """

    def __init__(self, config, info: TextInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        self.backbone = TextEncoder(config.backbone, info.vocab_size, info.max_length)

    def pretext(self):
        return token_ids

    def collate(self):
        return pad_batch

    def backbone_spec(self) -> BackboneSpec:
        return BackboneSpec(
            name="transformers",
            config=self.backbone.spec_config(),
            embed_dim=self.backbone.embed_dim,
            input={
                "layout": "dict of int64 (B, L) input_ids ([CLS] text [SEP], right-padded with [PAD]=0) and "
                "attention_mask; the embedding is the mean of the last hidden states over the real tokens",
                "max_length": self.info.max_length,
                "tokenizer_kind": self.info.tokenizer_kind,
                "tokenizer": self.info.tokenizer,
                "pad_id": PAD_ID,
            },
        )


def backbone_config(arch: str, **kw) -> TextBackboneConfig:
    """A :class:`TextBackboneConfig` factory for dataclass defaults."""
    return TextBackboneConfig(arch=arch, **kw)


def shift_right(labels: torch.Tensor, start_id: int = PAD_ID) -> torch.Tensor:
    """Decoder inputs of teacher forcing: ``[start, y_0, ..., y_{T-2}]`` (T5's ``_shift_right``; ignored
    positions become ``[PAD]``). Shapes: ``(B, T) -> (B, T)``."""
    out = labels.new_full(labels.shape, start_id)
    out[:, 1:] = labels[:, :-1].clamp_min(0)
    return out


def seq2seq_loss(backbone: TextEncoder, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Teacher-forced cross entropy of an encoder-decoder (T5) backbone, with T5's tied output layer
    (decoder states scaled by ``d_model ** -0.5``, then the shared embedding matrix).

    Shapes:
        - batch: ``input_ids``/``attention_mask`` ``(B, S)`` (source), ``labels`` ``(B, T)`` (target, -100 ignored)
    """
    labels = batch["labels"]
    out = backbone.model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        decoder_input_ids=shift_right(labels),
        decoder_attention_mask=(labels != IGNORE_INDEX).long(),
    )
    h = out.last_hidden_state * backbone.embed_dim**-0.5  # (B, T, D)
    logits = h @ backbone.input_embeddings().weight.T  # (B, T, V)
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)

"""What text methods share: the backbone from the data's vocabulary, its export spec and batching (the
:class:`TextMethod` base), the two token-level objectives several methods train (:class:`MaskedTokenPrediction`:
MLM, SLM; :class:`ReplacedTokenDetection`: RTS, C-RTS), and the teacher-forced loss of the T5 methods."""

from __future__ import annotations

import torch

from ssl_core.losses import masked_cross_entropy
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_text.data.text import TextInfo, TextSample, pad_batch
from ssl_text.models.backbones import TextBackboneConfig, TextEncoder
from ssl_text.models.heads import TiedLMHead, TokenClassifier, replaced_token_loss
from ssl_text.pretext.corruption import IGNORE_INDEX, collate_with_labels
from ssl_text.tokenization import PAD_ID


def token_ids(sample: TextSample) -> list[int]:
    """The pretext of methods that corrupt whole batches later: the sample's token ids."""
    return sample.ids


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


class MaskedTokenPrediction(TextMethod):
    """Predict the original token at every corrupted position, with a head tied to the input embeddings
    (BERT's masked-LM objective, Devlin et al., 2019): :math:`L = -\\frac{1}{|M|} \\sum_{i \\in M} \\log
    p(x_i \\mid \\tilde x)` over the selected positions :math:`M`.

    The base of methods that differ only in their corruption: subclasses implement :meth:`pretext`, a
    ``sample -> (corrupted ids, labels)`` pretext whose labels hold the original id where a loss is taken
    and -100 elsewhere (e.g. :class:`ssl_text.pretext.MLMPretext`).

    Shapes:
        - batch: ``input_ids``/``attention_mask``/``labels``, ``(B, L)``
        - :meth:`embed`: ``-> (B, hidden_size)``, mean of the last hidden states
    """

    def __init__(self, config, info: TextInfo) -> None:
        super().__init__(config, info)
        emb = self.backbone.input_embeddings()
        self.head = TiedLMHead(self.backbone.embed_dim, emb.embedding_dim, info.vocab_size)

    def collate(self):
        return collate_with_labels

    def forward(self, batch: dict[str, torch.Tensor]) -> MethodOutput:
        labels = batch["labels"]
        h = self.backbone.states(batch["input_ids"], batch["attention_mask"])  # (B, L, D)
        selected = labels != IGNORE_INDEX
        logits = self.head(h[selected], self.backbone.input_embeddings().weight)  # (M, V): only where predicted
        loss = masked_cross_entropy(logits, labels[selected])
        with torch.no_grad():
            acc = (logits.argmax(-1) == labels[selected]).float().mean() if selected.any() else torch.zeros(())
        return MethodOutput(loss, {"mlm_accuracy": acc})


class ReplacedTokenDetection(TextMethod):
    """Tell for every token whether it was substituted, with a binary head on its state (ELECTRA's
    discriminator objective, Clark et al., 2020): :math:`L = \\mathrm{BCE}(D(\\tilde x)_i, [\\tilde x_i \\ne
    x_i])` over all real tokens (:func:`ssl_text.models.heads.replaced_token_loss`).

    The base of methods that differ only in how substitutes are drawn: subclasses implement :meth:`pretext`,
    a ``sample -> (substituted ids, labels)`` pretext whose labels hold the original id at the selected
    positions and -100 elsewhere; a selected token whose substitute equals it counts as original.

    Shapes:
        - batch: ``input_ids`` (substituted), ``attention_mask``, ``labels`` (original id where selected), ``(B, L)``
        - :meth:`embed`: ``-> (B, hidden_size)``
    """

    def __init__(self, config, info: TextInfo) -> None:
        super().__init__(config, info)
        self.head = TokenClassifier(self.backbone.embed_dim)

    def collate(self):
        return collate_with_labels

    def forward(self, batch: dict[str, torch.Tensor]) -> MethodOutput:
        ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        replaced = ((labels != IGNORE_INDEX) & (labels != ids)).float()  # a draw equal to the original is original
        loss, acc = replaced_token_loss(self.head(self.backbone.states(ids, mask)), replaced, mask)
        return MethodOutput(loss, {"rts_accuracy": acc})


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

"""Masked language modelling (Devlin et al., 2019, "BERT: Pre-training of Deep Bidirectional Transformers for
Language Understanding"); on protein sequences, TAPE's masked-LM pretraining (Rao et al., 2019; seed 46).

Select 15% of the tokens; replace 80% of them by ``[MASK]``, 10% by a random token, keep 10%
(``ssl_core.masking.mlm_mask``, drawn anew for every sample and epoch: RoBERTa's dynamic masking); predict
the original tokens at the selected positions with a head tied to the input embeddings:
:math:`L = -\\frac{1}{|M|} \\sum_{i \\in M} \\log p(x_i \\mid \\tilde x)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ssl_core.losses import masked_cross_entropy
from ssl_core.masking import mlm_mask
from ssl_core.method import MethodOutput
from ssl_text.data.text import TextInfo, TextSample, pad_batch
from ssl_text.methods.common import TextMethod, backbone_config, pad_targets
from ssl_text.models.backbones import TextBackboneConfig
from ssl_text.models.heads import TiedLMHead
from ssl_text.tokenization import MASK_ID, NUM_SPECIAL


@dataclass
class MLMConfig:
    """Masked-LM settings (``--set method.<name>=<value>``).

    Args:
        backbone: the encoder (``bert``, ``roberta`` or ``electra``).
        mlm_probability: share of tokens selected for prediction (BERT: 0.15).
        mask_replace_prob: share of the selected tokens replaced by ``[MASK]`` (0.8).
        random_replace_prob: share of the selected tokens replaced by a random token (0.1).
    """

    backbone: TextBackboneConfig = field(default_factory=lambda: backbone_config("bert"))
    mlm_probability: float = 0.15
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1


class MLMPretext:
    """``sample -> (corrupted ids, labels)`` with ``mlm_mask`` on one sequence (picklable).

    Special tokens (``[PAD]``, ``[CLS]``, ``[SEP]``, ``[MASK]``, the sentinels) are never selected nor drawn.
    """

    def __init__(self, vocab_size: int, mlm_probability: float, mask_replace_prob: float, random_replace_prob: float):
        self.vocab_size, self.p = vocab_size, mlm_probability
        self.mask_p, self.random_p = mask_replace_prob, random_replace_prob

    def __call__(self, sample: TextSample) -> tuple[list[int], list[int]]:
        ids = torch.tensor([sample.ids])
        inputs, labels = mlm_mask(
            ids,
            self.vocab_size,
            MASK_ID,
            self.p,
            special_token_ids=range(NUM_SPECIAL),
            mask_replace_prob=self.mask_p,
            random_replace_prob=self.random_p,
        )
        return inputs[0].tolist(), labels[0].tolist()


def collate_corrupted(items: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
    """Pad corrupted inputs (``input_ids``, ``attention_mask``) and their ``labels`` (-100 where no loss)."""
    batch = pad_batch([x for x, _ in items])
    batch["labels"] = pad_targets([y for _, y in items])
    return batch


class MLM(TextMethod):
    """BERT-style masked language model with a head tied to the token embeddings.

    Shapes:
        - batch: ``input_ids``/``attention_mask``/``labels``, ``(B, L)``
        - :meth:`embed`: ``-> (B, hidden_size)``, mean of the last hidden states
    """

    def __init__(self, config: MLMConfig, info: TextInfo) -> None:
        super().__init__(config, info)
        emb = self.backbone.input_embeddings()
        self.head = TiedLMHead(self.backbone.embed_dim, emb.embedding_dim, info.vocab_size)

    def pretext(self) -> MLMPretext:
        c = self.config
        return MLMPretext(self.info.vocab_size, c.mlm_probability, c.mask_replace_prob, c.random_replace_prob)

    def collate(self):
        return collate_corrupted

    def forward(self, batch: dict[str, torch.Tensor]) -> MethodOutput:
        labels = batch["labels"]
        h = self.backbone.states(batch["input_ids"], batch["attention_mask"])  # (B, L, D)
        selected = labels != -100
        logits = self.head(h[selected], self.backbone.input_embeddings().weight)  # (M, V): only where predicted
        loss = masked_cross_entropy(logits, labels[selected])
        with torch.no_grad():
            acc = (logits.argmax(-1) == labels[selected]).float().mean() if selected.any() else torch.zeros(())
        return MethodOutput(loss, {"mlm_accuracy": acc})

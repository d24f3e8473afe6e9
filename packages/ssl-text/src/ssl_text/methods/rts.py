"""Random token substitution (Di Liello et al., 2022, "Effective Pre-Training Objectives for
Transformer-based Autoencoders"; the thesis of seed 41, "Structural Self-Supervised Objectives for
Transformers").

15% of the tokens are replaced by tokens drawn uniformly from the vocabulary (``ssl_core.masking.mlm_mask``
with every selected token replaced at random), and a binary head predicts for every token whether it is
original: :math:`L = \\mathrm{BCE}(D(\\tilde x)_i, [\\tilde x_i \\ne x_i])` over all tokens. Like ELECTRA
without the generator, so a step costs one encoder pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ssl_core.method import MethodOutput
from ssl_text.data.text import TextInfo
from ssl_text.methods.common import TextMethod, backbone_config
from ssl_text.methods.mlm import MLMPretext, collate_corrupted
from ssl_text.models.backbones import TextBackboneConfig
from ssl_text.models.heads import TokenClassifier


@dataclass
class RTSConfig:
    """RTS settings (``--set method.<name>=<value>``).

    Args:
        backbone: the encoder.
        substitution_probability: share of tokens replaced (0.15).
    """

    backbone: TextBackboneConfig = field(default_factory=lambda: backbone_config("roberta"))
    substitution_probability: float = 0.15


class RTS(TextMethod):
    """Binary original-vs-substituted classification of every token.

    Shapes:
        - batch: ``input_ids`` (substituted), ``attention_mask``, ``labels`` (original id where selected)
        - :meth:`embed`: ``-> (B, hidden_size)``
    """

    def __init__(self, config: RTSConfig, info: TextInfo) -> None:
        super().__init__(config, info)
        self.head = TokenClassifier(self.backbone.embed_dim)

    def pretext(self) -> MLMPretext:
        return MLMPretext(self.info.vocab_size, self.config.substitution_probability, 0.0, 1.0)

    def collate(self):
        return collate_corrupted

    def forward(self, batch: dict[str, torch.Tensor]) -> MethodOutput:
        ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        replaced = ((labels != -100) & (labels != ids)).float()  # a draw equal to the original is original
        logits = self.head(self.backbone.states(ids, mask))
        real = mask.bool()
        loss = F.binary_cross_entropy_with_logits(logits[real], replaced[real])
        with torch.no_grad():
            acc = ((logits[real] > 0).float() == replaced[real]).float().mean()
        return MethodOutput(loss, {"rts_accuracy": acc})

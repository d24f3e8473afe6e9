"""Masked language modelling (Devlin et al., 2019, "BERT: Pre-training of Deep Bidirectional Transformers for
Language Understanding"); on protein sequences, TAPE's masked-LM pretraining (Rao et al., 2019; seed 46).

Select 15% of the tokens; replace 80% of them by ``[MASK]``, 10% by a random token, keep 10%
(:class:`ssl_text.pretext.MLMPretext` over ``ssl_core.masking.mlm_mask``, drawn anew for every sample and epoch:
RoBERTa's dynamic masking); predict the original tokens at the selected positions with a head tied to the
input embeddings (:class:`~ssl_text.methods.common.MaskedTokenPrediction`):
:math:`L = -\\frac{1}{|M|} \\sum_{i \\in M} \\log p(x_i \\mid \\tilde x)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ssl_text.methods.common import MaskedTokenPrediction, backbone_config
from ssl_text.models.backbones import TextBackboneConfig
from ssl_text.pretext.corruption import MLMPretext


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


class MLM(MaskedTokenPrediction):
    """BERT-style masked language model: 80/10/10 corruption, the original token predicted by a tied head.

    Shapes:
        - batch: ``input_ids``/``attention_mask``/``labels``, ``(B, L)``
        - :meth:`embed`: ``-> (B, hidden_size)``, mean of the last hidden states
    """

    def pretext(self) -> MLMPretext:
        c = self.config
        return MLMPretext(self.info.vocab_size, c.mlm_probability, c.mask_replace_prob, c.random_replace_prob)

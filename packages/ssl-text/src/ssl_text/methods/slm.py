"""Swapped language modelling (Di Liello et al., 2022, "Effective Pre-Training Objectives for
Transformer-based Autoencoders"; seed 41).

Like masked LM, but the selected 15% of the tokens are all swapped for random tokens (no ``[MASK]``, which
never appears at fine-tuning time), and the model predicts the original token at every swapped position with
masked LM's tied head (:class:`~ssl_text.methods.common.MaskedTokenPrediction`):
:math:`L = -\\frac{1}{|S|} \\sum_{i \\in S} \\log p(x_i \\mid \\tilde x)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ssl_text.methods.common import MaskedTokenPrediction, backbone_config
from ssl_text.models.backbones import TextBackboneConfig
from ssl_text.pretext.corruption import MLMPretext


@dataclass
class SLMConfig:
    """SLM settings (``--set method.<name>=<value>``).

    Args:
        backbone: the encoder.
        swap_probability: share of tokens swapped and predicted (0.15).
    """

    backbone: TextBackboneConfig = field(default_factory=lambda: backbone_config("roberta"))
    swap_probability: float = 0.15


class SLM(MaskedTokenPrediction):
    """Masked LM whose corruption swaps every selected token for a random one.

    Shapes:
        - batch: ``input_ids`` (swapped), ``attention_mask``, ``labels`` (original id where swapped), ``(B, L)``
        - :meth:`embed`: ``-> (B, hidden_size)``
    """

    def pretext(self) -> MLMPretext:
        return MLMPretext(self.info.vocab_size, self.config.swap_probability, 0.0, 1.0)

"""Swapped language modelling (Di Liello et al., 2022, "Effective Pre-Training Objectives for
Transformer-based Autoencoders"; seed 41).

Like masked LM, but the selected 15% of the tokens are all swapped for random tokens (no ``[MASK]``, which
never appears at fine-tuning time), and the model predicts the original token at every swapped position:
:math:`L = -\\frac{1}{|S|} \\sum_{i \\in S} \\log p(x_i \\mid \\tilde x)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ssl_text.methods.common import backbone_config
from ssl_text.methods.mlm import MLM, MLMPretext
from ssl_text.models.backbones import TextBackboneConfig


@dataclass
class SLMConfig:
    """SLM settings (``--set method.<name>=<value>``).

    Args:
        backbone: the encoder.
        swap_probability: share of tokens swapped and predicted (0.15).
    """

    backbone: TextBackboneConfig = field(default_factory=lambda: backbone_config("roberta"))
    swap_probability: float = 0.15


class SLM(MLM):
    """Masked LM whose corruption swaps every selected token for a random one (the MLM head and loss)."""

    def pretext(self) -> MLMPretext:
        return MLMPretext(self.info.vocab_size, self.config.swap_probability, 0.0, 1.0)

"""Random token substitution (Di Liello et al., 2022, "Effective Pre-Training Objectives for
Transformer-based Autoencoders"; the thesis of seed 41, "Structural Self-Supervised Objectives for
Transformers").

15% of the tokens are replaced by tokens drawn uniformly from the vocabulary (:class:`ssl_text.pretext.MLMPretext`
with every selected token replaced at random), and a binary head predicts for every token whether it is
original (:class:`~ssl_text.methods.common.ReplacedTokenDetection`):
:math:`L = \\mathrm{BCE}(D(\\tilde x)_i, [\\tilde x_i \\ne x_i])` over all tokens. Like ELECTRA without the
generator, so a step costs one encoder pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ssl_text.methods.common import ReplacedTokenDetection, backbone_config
from ssl_text.models.backbones import TextBackboneConfig
from ssl_text.pretext.corruption import MLMPretext


@dataclass
class RTSConfig:
    """RTS settings (``--set method.<name>=<value>``).

    Args:
        backbone: the encoder.
        substitution_probability: share of tokens replaced (0.15).
    """

    backbone: TextBackboneConfig = field(default_factory=lambda: backbone_config("roberta"))
    substitution_probability: float = 0.15


class RTS(ReplacedTokenDetection):
    """Binary original-vs-substituted classification of every token, substitutes drawn from the vocabulary.

    Shapes:
        - batch: ``input_ids`` (substituted), ``attention_mask``, ``labels`` (original id where selected)
        - :meth:`embed`: ``-> (B, hidden_size)``
    """

    def pretext(self) -> MLMPretext:
        return MLMPretext(self.info.vocab_size, self.config.substitution_probability, 0.0, 1.0)

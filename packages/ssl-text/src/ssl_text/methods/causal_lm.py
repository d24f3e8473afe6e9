"""Causal language modelling, GPT-2 style, then classification (Xu et al., 2019, "Pre-training a Neural
Language Model Improves the Sample Efficiency of an Emergency Room Classification Model"; seed 40).

The paper retrains GPT-2 from scratch on unlabelled notes with the next-token objective
:math:`-\\sum_t \\log p(x_t \\mid x_{<t})`, then fine-tunes it for classification and reports how many
labels it takes to reach a given score. Here the objective is the same on a small GPT-2; the
sample-efficiency curve (fine-tuning on 1%, 10% and 100% of the labels, beside the same from random
initialisation and TF-IDF + logistic regression) is the recipe's probe (``data.finetune_fractions``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ssl_core.method import MethodOutput
from ssl_text.data.text import TextInfo
from ssl_text.methods.common import TextMethod, backbone_config
from ssl_text.models.backbones import TextBackboneConfig
from ssl_text.pretext.corruption import IGNORE_INDEX


@dataclass
class CausalLMConfig:
    """Causal LM settings (``--set method.<name>=<value>``).

    Args:
        backbone: a GPT-2 (``arch=gpt2``); the output layer is tied to the token embeddings as in GPT-2.
    """

    backbone: TextBackboneConfig = field(default_factory=lambda: backbone_config("gpt2"))


class CausalLM(TextMethod):
    """Next-token prediction with a GPT-2 whose output layer is its input embedding matrix.

    Shapes:
        - batch: ``{"input_ids": (B, L), "attention_mask": (B, L)}``
        - :meth:`embed`: ``-> (B, hidden_size)``, mean of the last hidden states
    """

    def __init__(self, config: CausalLMConfig, info: TextInfo) -> None:
        super().__init__(config, info)

    def forward(self, batch: dict[str, torch.Tensor]) -> MethodOutput:
        ids, mask = batch["input_ids"], batch["attention_mask"]
        h = self.backbone.states(ids, mask)  # (B, L, D)
        logits = h[:, :-1] @ self.backbone.input_embeddings().weight.T  # (B, L-1, V): predicts tokens 1..L-1
        targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, IGNORE_INDEX)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)
        return MethodOutput(loss, {"perplexity": loss.detach().exp()})

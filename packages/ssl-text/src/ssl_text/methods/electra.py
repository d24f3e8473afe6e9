"""ELECTRA replaced-token detection (Clark et al., 2020, "ELECTRA: Pre-training Text Encoders as
Discriminators Rather Than Generators").

A small generator G is trained with masked LM on 15% of the tokens (replaced by ``[MASK]``); its samples
fill the masked positions, and the discriminator D (the backbone users keep) predicts for every token
whether it was replaced. Sampled tokens equal to the original count as original. The joint loss is
:math:`L_{MLM}(G) + \\lambda L_{Disc}(D)` with :math:`\\lambda = 50`; no gradient flows through the sampling.
G and D share the token and position embeddings, as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import ElectraModel

from ssl_core.losses import masked_cross_entropy
from ssl_core.method import MethodOutput
from ssl_text.data.text import TextInfo
from ssl_text.methods.common import TextMethod, backbone_config
from ssl_text.models.backbones import TextBackboneConfig, hf_config
from ssl_text.models.heads import TiedLMHead, TokenClassifier, replaced_token_loss
from ssl_text.pretext.corruption import IGNORE_INDEX, MLMPretext, collate_with_labels


@dataclass
class ElectraConfig:
    """ELECTRA settings (``--set method.<name>=<value>``).

    Args:
        backbone: the discriminator (``arch=electra``).
        generator_size: generator width as a share of the discriminator's (the paper: 1/4 to 1/2).
        mask_probability: share of tokens the generator predicts (0.15).
        disc_weight: :math:`\\lambda`, weight of the discriminator loss (50).
    """

    backbone: TextBackboneConfig = field(default_factory=lambda: backbone_config("electra"))
    generator_size: float = 0.5
    mask_probability: float = 0.15
    disc_weight: float = 50.0


class Electra(TextMethod):
    """Generator + discriminator; :attr:`backbone` is the discriminator.

    Shapes:
        - batch: ``input_ids`` (generator input, masked), ``attention_mask``, ``labels`` (original id where
          masked, else -100), each ``(B, L)``
        - :meth:`embed`: ``-> (B, hidden_size)`` from the discriminator
    """

    def __init__(self, config: ElectraConfig, info: TextInfo) -> None:
        super().__init__(config, info)
        d = config.backbone
        width = max(d.num_heads, int(d.hidden_size * config.generator_size) // d.num_heads * d.num_heads)
        gen_cfg = TextBackboneConfig(
            arch="electra",
            hidden_size=width,
            num_layers=d.num_layers,
            num_heads=d.num_heads,
            intermediate_size=int(d.intermediate_size * config.generator_size),
            dropout=d.dropout,
        )
        gen_hf = hf_config(gen_cfg, info.vocab_size, info.max_length)
        gen_hf.embedding_size = d.hidden_size  # projected to the generator's width by ElectraModel
        self.generator = ElectraModel(gen_hf)
        # G and D share the token, position and segment embeddings
        g, e = self.generator.embeddings, self.backbone.model.embeddings
        g.word_embeddings, g.position_embeddings, g.token_type_embeddings = (
            e.word_embeddings,
            e.position_embeddings,
            e.token_type_embeddings,
        )
        self.generator_head = TiedLMHead(width, d.hidden_size, info.vocab_size)
        self.discriminator_head = TokenClassifier(d.hidden_size)

    def pretext(self) -> MLMPretext:
        return MLMPretext(self.info.vocab_size, self.config.mask_probability, 1.0, 0.0)

    def collate(self):
        return collate_with_labels

    def forward(self, batch: dict[str, torch.Tensor]) -> MethodOutput:
        ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        masked = labels != IGNORE_INDEX
        gen_logits = self.generator_head(
            self.generator(input_ids=ids, attention_mask=mask).last_hidden_state[masked],
            self.backbone.input_embeddings().weight,
        )  # (M, V)
        mlm_loss = masked_cross_entropy(gen_logits, labels[masked])
        with torch.no_grad():  # sample replacements from the generator (no gradient through sampling)
            sampled = torch.multinomial(F.softmax(gen_logits.float(), -1), 1).squeeze(-1)
            corrupted = ids.clone()
            corrupted[masked] = sampled
            original = torch.where(masked, labels, ids)
            replaced = (corrupted != original).float()  # (B, L)
        disc_logits = self.discriminator_head(self.backbone.states(corrupted, mask))  # (B, L)
        disc_loss, disc_acc = replaced_token_loss(disc_logits, replaced, mask)
        loss = mlm_loss + self.config.disc_weight * disc_loss
        return MethodOutput(
            loss, {"mlm_loss": mlm_loss.detach(), "disc_loss": disc_loss.detach(), "disc_accuracy": disc_acc}
        )

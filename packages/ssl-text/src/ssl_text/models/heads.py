"""Heads of the text objectives: token prediction tied to the input embeddings, and token classification with
the replaced-token-detection loss it trains on."""

from __future__ import annotations

import torch
from torch import nn


class TiedLMHead(nn.Module):
    """BERT's masked-LM head (``BertLMPredictionHead``): dense, GELU, LayerNorm, then scores against the
    (tied) input embedding matrix plus a bias.

    Shapes:
        - forward: ``h (..., D), embedding weight (V, E) -> (..., V)``
    """

    def __init__(self, hidden_size: int, embedding_size: int, vocab_size: int, eps: float = 1e-12) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, embedding_size)
        self.norm = nn.LayerNorm(embedding_size, eps=eps)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, h: torch.Tensor, embedding_weight: torch.Tensor) -> torch.Tensor:
        return self.norm(nn.functional.gelu(self.dense(h))) @ embedding_weight.T + self.bias


class TokenClassifier(nn.Module):
    """ELECTRA's discriminator head (``ElectraDiscriminatorPredictions``): dense, GELU, one logit per token.

    Shapes:
        - forward: ``(B, L, D) -> (B, L)``
    """

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.out = nn.Linear(hidden_size, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.out(nn.functional.gelu(self.dense(h))).squeeze(-1)


def replaced_token_loss(
    logits: torch.Tensor, replaced: torch.Tensor, attention_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replaced-token detection (ELECTRA's discriminator loss; Clark et al., 2020): binary cross entropy of
    every real token's logit against whether it was replaced, and the detection accuracy (no gradient).

    Args:
        logits: one logit per token (:class:`TokenClassifier`'s output).
        replaced: 1 where the token was replaced, 0 where it is original.
        attention_mask: 1 on real tokens, 0 on padding (left out of both).

    Shapes:
        - logits, replaced, attention_mask: ``(B, L)``
        - output: two scalars, ``(loss, accuracy)``
    """
    real = attention_mask.bool()
    loss = nn.functional.binary_cross_entropy_with_logits(logits[real], replaced[real])
    with torch.no_grad():
        acc = ((logits[real] > 0).float() == replaced[real]).float().mean()
    return loss, acc

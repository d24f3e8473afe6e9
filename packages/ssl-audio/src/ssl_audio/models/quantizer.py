"""Gumbel-softmax product quantizer of wav2vec 2.0 (Baevski et al., 2020, Sec. 3.2; Jang et al., 2017).

The feature vector is projected to ``G x V`` logits; in each group ``g`` one of ``V`` codewords
``e_g in R^{d/G}`` is chosen, and the ``G`` choices are concatenated into ``q in R^d``. In training the choice is
a straight-through hard Gumbel-softmax sample (one-hot forward, soft gradient) at temperature ``tau`` (annealed
2 -> 0.5 in the paper); in evaluation it is the argmax. The codebook perplexity
``sum_g exp(-sum_v pbar_gv log(pbar_gv + 1e-7))``, with ``pbar_g`` the softmax (no Gumbel noise) averaged over
the masked frames, feeds the diversity loss ``(G V - perplexity) / (G V)``; the ``1e-7`` (fairseq's and Hugging
Face's) keeps its gradient finite once a code's mean probability underflows to 0.

Parameters are named and shaped as Hugging Face's ``Wav2Vec2GumbelVectorQuantizer`` (``codevectors``
``(1, G V, d / G)``, ``weight_proj`` ``Linear(C, G V)``), so its weights load as they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.errors import ConfigError


class GumbelVectorQuantizer(nn.Module):
    """Product quantizer with ``num_groups`` codebooks of ``num_vars`` entries.

    Args:
        in_dim: size of the input features ``C``.
        num_groups: ``G`` (2 in the paper).
        num_vars: ``V`` entries per group (320).
        codevector_dim: size ``d`` of the concatenated codevector (256 in HF's default), divisible by ``G``.

    Shapes:
        - features: ``(B, F, C)``; mask: ``(B, F)`` bool or None
        - output: ``((B, F, d), perplexity ())``, and ``(B, F, G, V)`` code logits with ``return_logits``
    """

    def __init__(self, in_dim: int, num_groups: int = 2, num_vars: int = 320, codevector_dim: int = 256) -> None:
        super().__init__()
        if codevector_dim % num_groups:
            raise ConfigError(f"codevector_dim ({codevector_dim}) must be divisible by num_groups ({num_groups})")
        self.num_groups, self.num_vars = num_groups, num_vars
        self.codevectors = nn.Parameter(torch.empty(1, num_groups * num_vars, codevector_dim // num_groups))
        self.weight_proj = nn.Linear(in_dim, num_groups * num_vars)
        # the paper's init: codewords U[0, 1), logits weights N(0, 1), zero bias
        nn.init.uniform_(self.codevectors)
        nn.init.normal_(self.weight_proj.weight, mean=0.0, std=1.0)
        nn.init.zeros_(self.weight_proj.bias)
        self.temperature = 2.0

    @staticmethod
    def perplexity(probs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Sum over groups of ``exp(entropy)`` of the mean of ``probs`` ``(N, G, V)`` over the rows where
        ``mask`` (``N`` values, any shape) is True (all rows when None); ``log(p + 1e-7)`` as fairseq and Hugging
        Face."""
        if mask is None:
            marginal = probs.mean(dim=0)
        else:
            m = mask.reshape(-1, 1, 1).to(probs.dtype)
            marginal = (probs * m).sum(dim=0) / mask.sum()
        return torch.exp(-(marginal * torch.log(marginal + 1e-7)).sum(dim=-1)).sum()

    def code_logits(self, features: torch.Tensor) -> torch.Tensor:
        """The code logits before Gumbel noise: ``(B, F, C) -> (B, F, G, V)`` float32 (their argmax is the code
        picked in evaluation; w2v-BERT's token ids)."""
        return self.weight_proj(features).view(*features.shape[:2], self.num_groups, self.num_vars).float()

    def forward(
        self,
        features: torch.Tensor,
        mask: torch.Tensor | None = None,
        temperature: float | None = None,
        return_logits: bool = False,
    ) -> tuple[torch.Tensor, ...]:
        """Quantize ``features``; ``temperature`` overrides :attr:`temperature` (the Gumbel-softmax ``tau``);
        ``return_logits`` also returns :meth:`code_logits` (computed once, for callers that need them too)."""
        b, n, _ = features.shape
        code_logits = self.code_logits(features)
        logits = code_logits.view(b * n, self.num_groups, self.num_vars)
        if self.training:
            tau = self.temperature if temperature is None else temperature
            onehot = F.gumbel_softmax(logits, tau=tau, hard=True, dim=-1)
            ppl = self.perplexity(logits.softmax(dim=-1), mask)
        else:
            onehot = F.one_hot(logits.argmax(dim=-1), self.num_vars).to(logits.dtype)
            ppl = self.perplexity(onehot, mask)
        onehot = onehot.to(features.dtype)
        # (N, G, V) x (G, V, d/G) -> (N, G, d/G): the chosen codeword of each group
        book = self.codevectors.view(self.num_groups, self.num_vars, -1)
        q = torch.einsum("ngv,gvd->ngd", onehot, book)
        return (q.reshape(b, n, -1), ppl, code_logits) if return_logits else (q.reshape(b, n, -1), ppl)

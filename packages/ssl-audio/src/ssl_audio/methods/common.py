"""What several audio methods share: the pretext of methods that work on the whole batch, BYOL's projection MLP
and the contrastive task of wav2vec 2.0 (also w2v-BERT's contrastive module)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def waveform_item(wave: torch.Tensor) -> torch.Tensor:
    """The pretext of methods that draw masks and augmentations per batch in ``forward``: the clip as it is.

    Shapes:
        - input and output: ``(T,)``
    """
    return wave


def projection_mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """BYOL's projector / predictor: Linear -> BatchNorm -> ReLU -> Linear (BYOL-A, ATST)."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)
    )


def sample_negatives(mask: torch.Tensor, num_negatives: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw, for every masked frame, ``num_negatives`` other masked frames of the same clip, uniformly with
    replacement (fairseq's / Hugging Face's ``_sample_negative_indices``, batched: no loop over clips).

    Rows of unmasked frames hold 0 (unused). A clip with a single masked frame gets that frame itself (the
    loss then leaves those distractors out, as identical to the positive).

    Shapes:
        - mask: ``(B, F)`` bool
        - output: ``(B, F, K)`` long, frame indices within the clip
    """
    b, f = mask.shape
    n = mask.sum(dim=1)  # masked frames per clip
    # masked frame positions first, in time order: order[b, r] is the r-th masked frame of clip b
    order = torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices
    rank = mask.cumsum(dim=1) - 1  # rank of each masked frame among its clip's masked frames
    u = torch.rand(b, f, num_negatives, generator=generator, device=mask.device)
    # uniform over the n - 1 other masked frames: draw in [0, n-1), then skip the frame's own rank
    s = (u * (n - 1).clamp(min=1)[:, None, None]).long()
    s = s + (s >= rank[..., None]).long()
    s = torch.minimum(s, (n - 1).clamp(min=0)[:, None, None])
    neg = torch.gather(order, 1, s.view(b, -1)).view(b, f, num_negatives)
    return neg.masked_fill(~mask[..., None], 0)


def contrastive_logits(
    context: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, negatives: torch.Tensor, temperature: float
) -> torch.Tensor:
    """wav2vec 2.0's contrastive logits (Baevski et al., 2020, eq. 3): for every masked frame, the cosine similarity
    over ``temperature`` of its context vector with its own target (column 0) and with the targets of its
    distractors; a distractor whose target equals the positive's (the same codewords) gets ``-inf``, as in
    fairseq and Hugging Face. The loss is the cross-entropy with class 0.

    The cosines of every context with every target of its clip are one ``(B, F, F)`` product, and the
    distractors are gathered from it (cheaper than gathering ``(B, F, K, P)`` target vectors).

    Shapes:
        - context, targets: ``(B, F, P)``; mask: ``(B, F)`` bool; negatives: ``(B, F, K)`` frame indices
        - output: ``(M, 1 + K)`` for the ``M`` masked frames in row-major order
    """
    sim = torch.einsum(
        "bfp,bgp->bfg", F.normalize(context.float(), dim=-1, eps=1e-8), F.normalize(targets.float(), dim=-1, eps=1e-8)
    )
    sim = sim / temperature
    sel = mask.nonzero(as_tuple=True)  # masked frames (b, t)
    neg = negatives[sel]  # (M, K)
    rows = sim[sel]  # (M, F)
    pos = rows.gather(1, sel[1][:, None])  # (M, 1)
    neg_logits = rows.gather(1, neg)  # (M, K)
    with torch.no_grad():  # a distractor with the positive's codewords is no distractor
        t = targets.detach()
        same = (t[:, :, None] == t[:, None]).all(dim=-1)[sel].gather(1, neg)  # (M, K)
    return torch.cat([pos, neg_logits.masked_fill(same, float("-inf"))], dim=1)


def contrastive_loss(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of :func:`contrastive_logits` with the positive in column 0, mean over the masked frames."""
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))

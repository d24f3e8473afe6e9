"""Supervised contrastive loss: every sample of the same class is a positive."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.losses._common import check_positive, gather, global_mean


def supcon(
    z: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1, gather_distributed: bool = False
) -> torch.Tensor:
    r"""Supervised contrastive loss, :math:`\mathcal{L}^{sup}_{out}` (Khosla et al., 2020, eq. 2).

    All views of all samples are L2-normalised anchors. For anchor :math:`i`, :math:`A(i)` are all other
    embeddings and :math:`P(i) \subset A(i)` those with the same label:

    .. math::
        \ell_i = -\frac{1}{|P(i)|}\sum_{p \in P(i)} \log
            \frac{\exp(z_i\cdot z_p/\tau)}{\sum_{a \in A(i)} \exp(z_i\cdot z_a/\tau)}

    and the loss is the mean over anchors with at least one positive. (The authors' code counts anchors
    without positives as 0 in the mean and multiplies by :math:`\tau / 0.07`; with its default
    ``base_temperature = temperature`` that factor is 1.) With two views and all labels distinct this is
    :func:`ssl_core.losses.nt_xent`. With ``gather_distributed=True`` positives and negatives come from every
    rank; each rank's loss is scaled so that the mean over ranks is the mean over all anchors.

    Args:
        z: embeddings, one or several views per sample.
        labels: class of each sample.
        temperature: :math:`\tau` (paper: 0.1).
        gather_distributed: take positives and negatives from every rank.

    Shapes:
        - z: ``(N, D)`` or ``(N, V, D)``
        - labels: ``(N,)``
        - output: scalar
    """
    check_positive(temperature, "temperature")
    if z.ndim == 2:
        z = z[:, None]
    if z.ndim != 3 or labels.shape != z.shape[:1]:
        raise ValueError(
            f"supcon expects z (N, D) or (N, V, D) and labels (N,), got {tuple(z.shape)} and {tuple(labels.shape)}"
        )
    n, v, _ = z.shape
    z = F.normalize(z, dim=-1)
    candidates, offset = gather(z, gather_distributed)  # (N_all, V, D)
    all_labels, _ = gather(labels, gather_distributed)
    anchors = z.reshape(n * v, -1)
    logits = anchors @ candidates.reshape(-1, z.shape[-1]).T / temperature  # (n V, N_all V)
    anchor_labels = labels.repeat_interleave(v)
    cand_labels = all_labels.repeat_interleave(v)
    self_idx = (torch.arange(n, device=z.device) + offset).repeat_interleave(v) * v + torch.arange(
        v, device=z.device
    ).repeat(n)
    is_self = torch.zeros_like(logits, dtype=torch.bool)
    is_self[torch.arange(n * v, device=z.device), self_idx] = True
    log_prob = logits - torch.logsumexp(logits.masked_fill(is_self, float("-inf")), dim=1, keepdim=True)
    positive = (anchor_labels[:, None] == cand_labels[None, :]) & ~is_self
    n_pos = positive.sum(dim=1)
    has_pos = n_pos > 0
    per_anchor = -(log_prob * positive).sum(dim=1)[has_pos] / n_pos[has_pos]
    return global_mean(per_anchor, gather_distributed)  # over the anchors with positives of every rank


class SupConLoss(nn.Module):
    """Module form of :func:`supcon`.

    Args:
        temperature: softmax temperature.
        gather_distributed: take positives and negatives from every rank.
    """

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = False) -> None:
        super().__init__()
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return supcon(z, labels, self.temperature, self.gather_distributed)

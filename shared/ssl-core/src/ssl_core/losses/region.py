"""Region-pooled contrastive loss: features averaged over regions (superpixels) in two modalities (SLidR)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.losses._common import check_positive, gather, global_mean


def region_pool(features: torch.Tensor, regions: torch.Tensor, num_regions: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Average the features of the elements (points, pixels) of each region (SLidR's superpixel pooling).

    Args:
        features: one feature per element.
        regions: region index of each element in ``[0, num_regions)``; ``-1`` leaves an element out.
        num_regions: number ``R`` of regions.

    Shapes:
        - features: ``(P, D)``; regions: ``(P,)``
        - output: pooled features ``(R, D)`` (zeros for empty regions) and element counts ``(R,)``
    """
    if features.ndim != 2 or regions.shape != features.shape[:1]:
        raise ValueError(
            f"region_pool expects features (P, D) and regions (P,), "
            f"got {tuple(features.shape)} and {tuple(regions.shape)}"
        )
    if regions.numel() and int(regions.max()) >= num_regions:
        raise ValueError(f"region index {int(regions.max())} is out of range for num_regions={num_regions}")
    keep = regions >= 0
    idx, feats = regions[keep].long(), features[keep]
    sums = torch.zeros(num_regions, features.shape[1], dtype=features.dtype, device=features.device).index_add(
        0, idx, feats
    )
    counts = torch.zeros(num_regions, dtype=features.dtype, device=features.device).index_add(
        0, idx, torch.ones_like(idx, dtype=features.dtype)
    )
    return sums / counts.clamp(min=1.0)[:, None], counts


def region_contrastive(
    feats_a: torch.Tensor,
    regions_a: torch.Tensor,
    feats_b: torch.Tensor,
    regions_b: torch.Tensor,
    num_regions: int,
    temperature: float = 0.07,
    gather_distributed: bool = False,
) -> torch.Tensor:
    r"""Superpixel-driven contrastive loss between two modalities (SLidR; Sautier et al., 2022, eq. 2).

    Features of both modalities are L2-normalised and averaged over each region (superpixel) --
    :func:`region_pool` -- giving :math:`k_s` (e.g. Lidar points, the student) and :math:`q_s` (image
    pixels, the frozen teacher) for every region :math:`s` seen by both. Matching regions are positives,
    all other regions negatives:

    .. math:: L = -\frac{1}{|S|}\sum_{s \in S} \log \frac{\exp(k_s\cdot q_s/\tau)}{\sum_{s'} \exp(k_s\cdot q_{s'}/\tau)}

    so every region weighs the same whatever its number of points. Region indices must be unique over the
    local batch (offset them per image). With ``gather_distributed=True`` the candidate regions of every rank
    are used (``num_regions`` must be the same on every rank), and the loss is normalised by the number of
    regions over all ranks, so that DDP's mean over ranks is the mean over all regions.

    Args:
        feats_a: anchor-modality features (points).
        regions_a: region of each anchor-modality element (``-1``: none).
        feats_b: candidate-modality features (pixels).
        regions_b: region of each candidate-modality element (``-1``: none).
        num_regions: number of region indices ``R``.
        temperature: :math:`\tau` (SLidR: 0.07).
        gather_distributed: take negative regions from every rank.

    Shapes:
        - feats_a: ``(P_a, D)``, regions_a: ``(P_a,)``, feats_b: ``(P_b, D)``, regions_b: ``(P_b,)``
        - output: scalar
    """
    check_positive(temperature, "temperature")
    k, count_a = region_pool(F.normalize(feats_a, dim=1), regions_a, num_regions)
    q, count_b = region_pool(F.normalize(feats_b, dim=1), regions_b, num_regions)
    valid = (count_a > 0) & (count_b > 0)  # regions seen in both modalities
    all_q, offset = gather(q, gather_distributed)  # (W R, D)
    all_valid, _ = gather(valid.to(torch.uint8), gather_distributed)  # gloo gathers no bool tensors
    all_valid = all_valid.bool()
    logits = (k @ all_q.T / temperature).masked_fill(~all_valid[None, :], float("-inf"))  # (R, W R)
    target = torch.arange(num_regions, device=k.device) + offset
    per_region = F.cross_entropy(logits[valid], target[valid], reduction="none")
    return global_mean(per_region, gather_distributed)  # over the regions seen twice of every rank


class RegionContrastiveLoss(nn.Module):
    """Module form of :func:`region_contrastive` (SLidR).

    Args:
        num_regions: number of region indices per batch.
        temperature: softmax temperature.
        gather_distributed: take negative regions from every rank.
    """

    def __init__(self, num_regions: int, temperature: float = 0.07, gather_distributed: bool = False) -> None:
        super().__init__()
        self.num_regions, self.temperature, self.gather_distributed = num_regions, temperature, gather_distributed

    def forward(
        self, feats_a: torch.Tensor, regions_a: torch.Tensor, feats_b: torch.Tensor, regions_b: torch.Tensor
    ) -> torch.Tensor:
        return region_contrastive(
            feats_a, regions_a, feats_b, regions_b, self.num_regions, self.temperature, self.gather_distributed
        )

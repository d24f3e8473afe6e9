"""Mask generators (every one takes a ``torch.Generator``) and curriculum mask-ratio schedules."""

from ssl_core.masking.patches import MaskInfo, block_mask, disjoint_masks, random_mask, tube_mask
from ssl_core.masking.schedules import mask_ratio_schedule, phase_schedule
from ssl_core.masking.sequences import mlm_mask, span_mask, time_mask

__all__ = [
    "MaskInfo",
    "block_mask",
    "disjoint_masks",
    "mask_ratio_schedule",
    "mlm_mask",
    "phase_schedule",
    "random_mask",
    "span_mask",
    "time_mask",
    "tube_mask",
]

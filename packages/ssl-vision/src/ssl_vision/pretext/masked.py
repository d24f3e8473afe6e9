"""A view of an image and a random patch mask, drawn together in the data-loader worker."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ssl_core.masking import random_mask
from ssl_vision.transforms.views import one_thread


class MaskedView:
    """``image -> {"image", "mask", "ids_keep", "ids_restore"}``: one augmented view and a random mask of
    ``mask_ratio`` of its ``num_patches`` patches (:func:`ssl_core.masking.random_mask`, MAE's sampling).

    The mask is drawn from torch's global generator, which the trainer seeds per sample, so a resumed run
    masks the same patches. Picklable (it runs in data-loader workers).

    Args:
        view: the view transform (uint8 image -> normalised float tensor).
        num_patches: patches per view, ``(image_size / patch_size)^2``.
        mask_ratio: share of masked patches.

    Shapes:
        - image: ``(C, H, W)``; mask: ``(L,)`` bool, True on masked patches; ids_keep: ``(L_keep,)``;
          ids_restore: ``(L,)``; collated, each gains a leading batch dimension.
    """

    def __init__(self, view: Callable[[torch.Tensor], torch.Tensor], num_patches: int, mask_ratio: float) -> None:
        self.view, self.num_patches, self.mask_ratio = view, num_patches, mask_ratio

    def __call__(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        m = random_mask(1, self.num_patches, self.mask_ratio)
        with one_thread():
            view = self.view(image)
        return {
            "image": view,
            "mask": m.mask[0],
            "ids_keep": m.ids_keep[0],
            "ids_restore": m.ids_restore[0],
        }

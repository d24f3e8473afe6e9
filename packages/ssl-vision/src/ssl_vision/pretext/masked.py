"""A view of an image and a random patch mask, drawn together per image and rendered per batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import default_collate

from ssl_core.masking import random_mask
from ssl_vision.transforms.views import View


class MaskedView:
    """``image -> {"image", "mask", "ids_keep", "ids_restore"}``: one augmented view and a random mask of
    ``mask_ratio`` of its ``num_patches`` patches (:func:`ssl_core.masking.random_mask`, MAE's sampling).

    The mask and the view's parameters are drawn per image from torch's global generator, which the trainer
    seeds per sample, so a resumed run masks the same patches; the view's pixels are computed per batch in
    :meth:`collate` (see :class:`~ssl_vision.transforms.views.View`). Picklable (it runs in data-loader
    workers).

    Args:
        view: the view.
        num_patches: patches per view, ``(image_size / patch_size)^2``.
        mask_ratio: share of masked patches.

    Shapes:
        - collated: image ``(B, C, H, W)``; mask ``(B, L)`` bool, True on masked patches; ids_keep
          ``(B, L_keep)``; ids_restore ``(B, L)``
    """

    def __init__(self, view: View, num_patches: int, mask_ratio: float) -> None:
        self.view, self.num_patches, self.mask_ratio = view, num_patches, mask_ratio

    def __call__(self, image: torch.Tensor) -> dict[str, Any]:
        m = random_mask(1, self.num_patches, self.mask_ratio)
        return {
            "image": image,
            "view": torch.tensor(self.view.draw(image)),
            "mask": m.mask[0],
            "ids_keep": m.ids_keep[0],
            "ids_restore": m.ids_restore[0],
        }

    def collate(self, items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Batch the masks and render the views."""
        batch = default_collate(list(items))
        batch["image"] = self.view.render(batch["image"], batch.pop("view"))
        return batch

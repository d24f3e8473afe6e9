"""Augmented views of labelled images (for the recipes that train on labels too: SLA, the multi-task recipe)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import default_collate

from ssl_core.errors import ConfigError
from ssl_core.masking import random_mask
from ssl_vision.transforms.views import View


class LabeledViews:
    """``{"image", "label"} -> views, label (and a patch mask)``: the random parameters of each view (and an
    optional random mask of ``mask_ratio`` of ``num_patches`` patches, :func:`ssl_core.masking.random_mask`)
    drawn per image from torch's global generator; :meth:`collate` renders the views of a batch
    (:class:`~ssl_vision.transforms.views.View`). Picklable (it runs in data-loader workers).

    Args:
        views: one :class:`View` per output view (the same object may appear several times).
        num_patches: patches per view, for the mask (``None``: no mask).
        mask_ratio: share of masked patches.

    Shapes:
        - collated: ``{"views": V tensors (B, C, S, S) normalised float, "label": (B,) int64}`` and, with a
          mask, ``"mask": (B, L)`` bool, True on masked patches (it belongs to the first view)
    """

    def __init__(self, views: Sequence[View], num_patches: int | None = None, mask_ratio: float = 0.0) -> None:
        self.views, self.num_patches, self.mask_ratio = list(views), num_patches, mask_ratio

    def __call__(self, item: Any) -> dict[str, Any]:
        if not isinstance(item, dict) or "label" not in item:
            raise ConfigError(
                "this recipe trains on labels: its items must be {'image', 'label'}; set data.train_labels=true "
                "(and give labelled data)"
            )
        image = item["image"]
        out = {"image": image, "params": torch.tensor([v.draw(image) for v in self.views]), "label": item["label"]}
        if self.num_patches is not None:
            out["mask"] = random_mask(1, self.num_patches, self.mask_ratio).mask[0]
        return out

    def collate(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Batch the labels (and masks) and render the views."""
        batch = default_collate(list(items))
        images, params = batch.pop("image"), batch.pop("params")  # (B, C, H, W), (B, V, N_PARAMS)
        batch["views"] = tuple(v.render(images, params[:, i]) for i, v in enumerate(self.views))
        return batch

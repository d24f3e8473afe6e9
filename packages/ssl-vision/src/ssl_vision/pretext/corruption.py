"""Group-masked corruption of images (GMML; Atito, Awais and Kittler, 2021, SiT) and SiT's two rotated,
corrupted views.

Groups of connected patches (rectangular blocks of the ViT's patch grid, :func:`ssl_core.masking.block_mask`)
are corrupted in one of three ways, drawn per image: replaced by Gaussian noise (the SiT paper's "random
drop"), set to zero (in normalised units, i.e. the data's mean: the default of the reference code's later
versions), or replaced by the pixels at the same place of another image of the batch ("random replace").
As the reference's ``drop_align`` set to the patch size, the corrupted regions are whole patches, so the
reconstruction loss can be weighted on the corrupted patches exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import default_collate

from ssl_core.errors import ConfigError
from ssl_core.masking import block_mask
from ssl_vision.transforms.views import View

KINDS = ("noise", "zeros", "replace")


@dataclass
class CorruptionConfig:
    """How the groups of patches are corrupted.

    Args:
        mask_ratio: share of the patches corrupted per image (GMML: 50-70% works best; the reference code's
            later default is 50% of the pixels).
        min_block_patches: smallest area of one group, in patches (``block_mask``'s ``min_num_patches``;
            BEiT's 16 suits a 14x14 grid, not the 4x4 grid of a 28x28 image in 7-pixel patches).
        max_block_patches: largest area of one group, in patches (``None``: the image's whole budget).
        kinds: the corruptions drawn from, uniformly per image: ``noise`` (N(0, 1) in normalised units),
            ``zeros`` and ``replace`` (the same pixels of another image of the batch).
    """

    mask_ratio: float = 0.5
    min_block_patches: int = 2
    max_block_patches: int | None = None
    kinds: list[str] = field(default_factory=lambda: ["noise", "replace"])

    def __post_init__(self) -> None:
        if not 0 < self.mask_ratio < 1:
            raise ConfigError(f"corruption.mask_ratio must lie in (0, 1), got {self.mask_ratio}")
        if self.min_block_patches < 1 or (
            self.max_block_patches is not None and self.max_block_patches < self.min_block_patches
        ):
            raise ConfigError(
                "corruption.min_block_patches must be >= 1 and max_block_patches (or null) >= min_block_patches, "
                f"got {self.min_block_patches}, {self.max_block_patches}"
            )
        bad = [k for k in self.kinds if k not in KINDS]
        if not self.kinds or bad:
            raise ConfigError(f"corruption.kinds must be a non-empty list of {', '.join(KINDS)}; got {self.kinds}")


def pixel_mask(mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """A patch mask spread over the patches' pixels.

    Args:
        mask: True on the corrupted patches, row-major over a square grid.
        patch_size: the patches' side ``p``.

    Shapes:
        - mask: ``(B, L)`` with ``L = g * g``
        - output: ``(B, 1, g * p, g * p)`` bool
    """
    b, n = mask.shape
    g = int(round(n**0.5))
    if g * g != n:
        raise ValueError(f"pixel_mask needs a square patch grid, got {n} patches")
    m = mask.view(b, 1, g, g)
    return m.repeat_interleave(patch_size, dim=2).repeat_interleave(patch_size, dim=3)


def corrupt(
    images: torch.Tensor, mask: torch.Tensor, kind: torch.Tensor, noise: torch.Tensor, patch_size: int
) -> torch.Tensor:
    """Corrupt the masked patches of each image; the other pixels are returned untouched.

    Image ``i`` is corrupted by ``KINDS[kind[i]]``: its masked pixels become ``noise[i]`` (``noise``), 0
    (``zeros``) or the pixels of image ``i + 1`` (``replace``; the batch is shuffled, so that is a random
    other image; the last image takes the first's).

    Args:
        images: normalised images.
        mask: True on the corrupted patches (a square grid of ``patch_size`` patches).
        kind: index into :data:`KINDS` per image.
        noise: the noise of each image.
        patch_size: the patches' side.

    Shapes:
        - images, noise: ``(B, C, H, W)``; mask: ``(B, L)`` bool; kind: ``(B,)`` int64
        - output: ``(B, C, H, W)``
    """
    if images.shape != noise.shape or mask.shape[0] != len(images) or kind.shape != (len(images),):
        raise ValueError(
            f"corrupt: images {tuple(images.shape)}, noise {tuple(noise.shape)}, mask {tuple(mask.shape)} and "
            f"kind {tuple(kind.shape)} disagree"
        )
    pix = pixel_mask(mask, patch_size)  # (B, 1, H, W)
    if pix.shape[-2:] != images.shape[-2:]:
        raise ValueError(f"corrupt: a {tuple(pix.shape[-2:])} patch grid does not cover {tuple(images.shape[-2:])}")
    k = kind.view(-1, 1, 1, 1)
    fill = torch.where(k == KINDS.index("noise"), noise, torch.zeros_like(images))
    fill = torch.where(k == KINDS.index("replace"), images.roll(-1, dims=0), fill)
    return torch.where(pix, fill, images)


def rotate(images: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Rotate each image by ``rotation[i]`` counter-clockwise quarter turns (``torch.rot90``).

    Shapes:
        - images: ``(B, C, S, S)``; rotation: ``(B,)`` int in {0, 1, 2, 3}
        - output: ``(B, C, S, S)``
    """
    out = images.clone()
    for r in range(1, 4):
        sel = rotation == r
        if sel.any():
            out[sel] = images[sel].rot90(r, dims=(2, 3))
    return out


class CorruptedViews:
    """SiT's pretext: ``image -> 2 views``, each rotated by a random multiple of 90 degrees and corrupted on
    random groups of patches.

    Per image (in data-loader workers, from torch's global generator, which the trainer seeds per sample): each
    view's augmentation parameters, its rotation ``r`` in {0, 1, 2, 3} (counter-clockwise quarter turns), its
    group mask (:func:`~ssl_core.masking.block_mask` on the patch grid), its corruption kind and its noise.
    Per batch (:meth:`collate`): the views are rendered, rotated and corrupted (:func:`corrupt`).

    Args:
        views: the two views' augmentations (the same :class:`View` twice for symmetric views).
        cfg: the corruption.
        patch_size: the ViT's patch side (must divide the views' side).

    Shapes:
        - collated: ``{"clean": (2B, C, S, S), "corrupted": (2B, C, S, S), "mask": (2B, L) bool,
          "rotation": (2B,) int64}``, the first views of all images, then the second views
    """

    def __init__(self, views: Sequence[View], cfg: CorruptionConfig, patch_size: int) -> None:
        if len(views) != 2:
            raise ConfigError(f"SiT takes 2 views, got {len(views)}")
        sizes = {v.size for v in views}
        if len(sizes) != 1 or next(iter(sizes)) % patch_size:
            raise ConfigError(f"SiT's views need one size divisible by the patch size {patch_size}, got {sizes}")
        self.views, self.cfg, self.patch_size = list(views), cfg, patch_size
        self.size = next(iter(sizes))
        self.grid = self.size // patch_size

    def __call__(self, image: torch.Tensor) -> dict[str, Any]:
        c, g = self.cfg, self.grid
        masks = block_mask(
            2, g, g, c.mask_ratio, min_num_patches=c.min_block_patches, max_num_patches=c.max_block_patches
        )
        return {
            "image": image,
            "view": torch.tensor([v.draw(image) for v in self.views]),  # (2, N_PARAMS)
            "rotation": torch.randint(0, 4, (2,)),
            "mask": masks.flatten(1),  # (2, L)
            "kind": torch.tensor([KINDS.index(c.kinds[i]) for i in torch.randint(0, len(c.kinds), (2,)).tolist()]),
            "noise": torch.randn(2, image.shape[0], self.size, self.size),
        }

    def collate(self, items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Render, rotate and corrupt the views of a batch of drawn items."""
        batch = default_collate(list(items))
        clean, corrupted = [], []
        for i, view in enumerate(self.views):
            x = view.render(batch["image"], batch["view"][:, i])  # (B, C, S, S)
            x = rotate(x, batch["rotation"][:, i])
            clean.append(x)
            corrupted.append(
                corrupt(x, batch["mask"][:, i], batch["kind"][:, i], batch["noise"][:, i], self.patch_size)
            )
        return {
            "clean": torch.cat(clean),
            "corrupted": torch.cat(corrupted),
            "mask": batch["mask"].transpose(0, 1).flatten(0, 1),
            "rotation": batch["rotation"].transpose(0, 1).flatten(),
        }

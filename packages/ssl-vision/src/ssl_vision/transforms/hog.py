"""Histograms of oriented gradients (Dalal & Triggs, 2005) on batches of images, the targets of DMJD.

DMJD (Ma et al., 2023) predicts HOG features as MaskFeat does: per-cell histograms of gradient orientations, each
cell's histogram standardised over its bins (the reference code's ``InstanceWhitening``, a LayerNorm without
affine parameters), the cells of a patch concatenated. The arithmetic is scikit-image's ``skimage.feature.hog``
(and the reference's ``hog_torch``): central differences with zero borders, unsigned orientations in ``[0, 180)``
degrees put in ``orientations`` equal bins (hard binning), magnitudes summed per cell and divided by its area.
The tests compare the cell histograms with scikit-image's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssl_core.errors import ConfigError


def hog_gradients(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central-difference gradients along rows and columns, zero on the border rows / columns
    (``skimage.feature._hog._hog_channel_gradient``).

    Args:
        images: float images.

    Shapes:
        - images: ``(B, C, H, W)``
        - output: ``g_row, g_col``, both ``(B, C, H, W)``
    """
    g_row = torch.zeros_like(images)
    g_col = torch.zeros_like(images)
    g_row[..., 1:-1, :] = images[..., 2:, :] - images[..., :-2, :]
    g_col[..., :, 1:-1] = images[..., :, 2:] - images[..., :, :-2]
    return g_row, g_col


def hog_cell_histograms(images: torch.Tensor, cell_size: int, orientations: int = 9) -> torch.Tensor:
    """Per-cell histograms of unsigned gradient orientations, weighted by gradient magnitude, per channel.

    As scikit-image's ``hog`` before block normalisation: the orientation ``atan2(g_row, g_col)`` in degrees
    modulo 180 falls in bin ``floor(angle * orientations / 180)``; each bin sums the magnitudes ``hypot(g_row,
    g_col)`` of its pixels in the cell, divided by the cell's ``cell_size^2`` pixels. Rows / columns beyond the
    last whole cell are ignored. Channels are kept apart (DMJD's reference concatenates them).

    Args:
        images: float images (any scale; DMJD's targets use grey levels 0-255).
        cell_size: side of a square cell in pixels.
        orientations: number of orientation bins over ``[0, 180)`` degrees.

    Shapes:
        - images: ``(B, C, H, W)``
        - output: ``(B, C, H // cell_size, W // cell_size, orientations)``
    """
    if cell_size < 1 or orientations < 1:
        raise ConfigError(f"HOG needs cell_size >= 1 and orientations >= 1, got {cell_size} and {orientations}")
    b, c, h, w = images.shape
    rows, cols = h // cell_size, w // cell_size
    if rows == 0 or cols == 0:
        raise ConfigError(f"HOG cells of {cell_size} pixels do not fit in {h}x{w} images; use smaller cells")
    g_row, g_col = hog_gradients(images)
    magnitude = torch.hypot(g_row, g_col)
    angle = torch.rad2deg(torch.atan2(g_row, g_col)) % 180.0
    # clamp: an angle a hair below 0 may round to exactly 180 after the modulo
    bins = torch.floor(angle * (orientations / 180.0)).long().clamp_(0, orientations - 1)
    weighted = magnitude.new_zeros(b, c, h, w, orientations).scatter_(-1, bins[..., None], magnitude[..., None])
    weighted = weighted[:, :, : rows * cell_size, : cols * cell_size]
    cells = weighted.reshape(b, c, rows, cell_size, cols, cell_size, orientations).sum(dim=(3, 5))
    return cells / (cell_size * cell_size)


def hog_patch_targets(
    images: torch.Tensor, patch_size: int, cells_per_patch: int = 2, orientations: int = 9, eps: float = 1e-5
) -> torch.Tensor:
    """DMJD's HOG targets: for every patch, the standardised histograms of its ``cells_per_patch^2`` cells.

    The reference code (ImageNet, 16-pixel patches) takes 8-pixel cells, so 2 x 2 cells per patch, and
    standardises each cell's histogram over its bins (mean 0, variance 1, ``eps`` as LayerNorm's). Patches of 7
    pixels (28x28 Fashion-MNIST) do not split into whole cells, so the image is first upsampled bilinearly by
    ``cells_per_patch`` and the cells are ``patch_size`` pixels of the upsampled image (``patch_size /
    cells_per_patch`` original pixels); ``cells_per_patch=1`` uses the image as it is, one cell per patch.

    Args:
        images: float images in grey levels (the reference computes HOG on 0-255 values).
        patch_size: the ViT's patch side in pixels.
        cells_per_patch: cells along each side of a patch.
        orientations: orientation bins per cell.
        eps: added to the variance when standardising a cell's histogram.

    Shapes:
        - images: ``(B, C, H, W)`` with ``H``, ``W`` multiples of ``patch_size``
        - output: ``(B, L, cells_per_patch^2 * orientations * C)``, patches row-major (as ``patchify``), values
          ordered (cell row, cell column, orientation, channel) as the reference's ``(dh dw d c)``
    """
    if cells_per_patch < 1:
        raise ConfigError(f"cells_per_patch must be at least 1, got {cells_per_patch}")
    b, c, h, w = images.shape
    if h % patch_size or w % patch_size:
        raise ConfigError(f"images of {h}x{w} do not split into {patch_size}-pixel patches")
    k = cells_per_patch
    if k > 1:
        images = F.interpolate(images, scale_factor=k, mode="bilinear", align_corners=False)
    hist = hog_cell_histograms(images, patch_size, orientations)  # (B, C, h/p*k, w/p*k, O)
    hist = F.layer_norm(hist, (orientations,), eps=eps)  # the reference's InstanceWhitening
    gh, gw = h // patch_size, w // patch_size
    hist = hist.reshape(b, c, gh, k, gw, k, orientations)
    return hist.permute(0, 2, 4, 3, 5, 6, 1).reshape(b, gh * gw, k * k * orientations * c)


def hog_target_dim(channels: int, cells_per_patch: int = 2, orientations: int = 9) -> int:
    """Values per patch of :func:`hog_patch_targets`: ``cells_per_patch^2 * orientations * channels``."""
    return cells_per_patch * cells_per_patch * orientations * channels

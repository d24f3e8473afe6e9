"""Augmented views for joint-embedding methods, on torchvision's transforms v2."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torchvision.transforms import v2

from ssl_vision.data.images import ImageInfo


@dataclass
class ViewConfig:
    """The augmentations of one view (SimCLR, Chen et al., 2020, appendix A), as data.

    Colour settings that need RGB (saturation, hue, grayscale) are skipped for 1-channel images.

    Args:
        crop_scale: area range of ``RandomResizedCrop`` (SimCLR: 0.08-1 on ImageNet; 0.2-1 suits 28-32 px).
        crop_ratio: aspect-ratio range of the crop.
        hflip: probability of a horizontal flip.
        jitter_prob: probability of applying colour jitter.
        brightness, contrast, saturation, hue: colour-jitter strengths (SimCLR: 0.8s, 0.8s, 0.8s, 0.2s).
        grayscale_prob: probability of converting an RGB view to grayscale.
        blur_prob: probability of a Gaussian blur (kernel about a tenth of the image).
        solarize_prob: probability of solarisation (BYOL's second view).
    """

    crop_scale: list[float] = field(default_factory=lambda: [0.2, 1.0])
    crop_ratio: list[float] = field(default_factory=lambda: [3 / 4, 4 / 3])
    hflip: float = 0.5
    jitter_prob: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    grayscale_prob: float = 0.2
    blur_prob: float = 0.0
    solarize_prob: float = 0.0


def view_transform(cfg: ViewConfig, info: ImageInfo) -> v2.Compose:
    """Build the transform ``uint8 (C, H, W) -> normalised float (C, S, S)`` of one view (``S = info.image_size``)."""
    rgb = info.channels == 3
    ops: list[Callable] = [
        v2.RandomResizedCrop(info.image_size, scale=tuple(cfg.crop_scale), ratio=tuple(cfg.crop_ratio), antialias=True)
    ]
    if cfg.hflip > 0:
        ops.append(v2.RandomHorizontalFlip(cfg.hflip))
    if cfg.jitter_prob > 0:
        jitter = v2.ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation if rgb else 0, cfg.hue if rgb else 0)
        ops.append(v2.RandomApply([jitter], p=cfg.jitter_prob))
    if rgb and cfg.grayscale_prob > 0:
        ops.append(v2.RandomGrayscale(cfg.grayscale_prob))
    if cfg.blur_prob > 0:
        k = max(3, (info.image_size // 10) | 1)  # odd kernel, about 10% of the side
        ops.append(v2.RandomApply([v2.GaussianBlur(k, sigma=(0.1, 2.0))], p=cfg.blur_prob))
    if cfg.solarize_prob > 0:
        ops.append(v2.RandomSolarize(128, p=cfg.solarize_prob))
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(info.mean, info.std)]
    return v2.Compose(ops)


class MultiView:
    """Apply several view transforms to one image; returns a tuple of views (picklable for workers)."""

    def __init__(self, transforms: Sequence[Callable]) -> None:
        self.transforms = list(transforms)

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(t(image) for t in self.transforms)

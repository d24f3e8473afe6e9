"""Augmented views for joint-embedding methods, on torchvision's transforms v2."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFilter
from torchvision import tv_tensors
from torchvision.transforms import v2

from ssl_vision.data.images import ImageInfo
from ssl_vision.transforms import kernels as K


@dataclass
class ViewConfig:
    """The augmentations of one view (SimCLR, Chen et al., 2020, appendix A), as data.

    Colour settings that need RGB (saturation, hue, grayscale) are skipped for 1-channel images. The
    views of the other methods are values of this class: :func:`byol_views`, :func:`mae_view` and the
    global and local crops of :class:`MultiCropConfig`.

    Args:
        size: side of the output view (``None``: the image size); multi-crop's local views are smaller.
        crop_scale: area range of ``RandomResizedCrop`` (SimCLR: 0.08-1 on ImageNet; 0.2-1 suits 28-32 px).
        crop_ratio: aspect-ratio range of the crop.
        hflip: probability of a horizontal flip.
        jitter_prob: probability of applying colour jitter.
        brightness, contrast, saturation, hue: colour-jitter strengths (SimCLR: 0.8s, 0.8s, 0.8s, 0.2s).
        grayscale_prob: probability of converting an RGB view to grayscale.
        blur_prob: probability of a Gaussian blur.
        blur_sigma: range of the blur's standard deviation in pixels, drawn uniformly (SimCLR: 0.1-2.0).
            The blur is PIL's ``GaussianBlur(radius=sigma)`` (:class:`GaussianBlur`), as in the official
            PyTorch code of MoCo, DINO and VICReg and in lightly's views.
        solarize_prob: probability of solarisation (BYOL's second view).
    """

    size: int | None = None
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
    blur_sigma: list[float] = field(default_factory=lambda: [0.1, 2.0])
    solarize_prob: float = 0.0

    def __post_init__(self) -> None:
        from ssl_core.errors import ConfigError

        if len(self.crop_scale) != 2 or len(self.crop_ratio) != 2:
            raise ConfigError("a view's crop_scale and crop_ratio are [low, high] pairs")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ConfigError(f"a view's crop_scale must satisfy 0 < low <= high <= 1, got {list(self.crop_scale)}")
        if len(self.blur_sigma) != 2 or not 0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            got = list(self.blur_sigma)
            raise ConfigError(f"a view's blur_sigma must be [low, high] pixels with 0 < low <= high, got {got}")
        if self.size is not None and self.size < 4:
            raise ConfigError(f"a view's size must be at least 4 pixels, got {self.size}")
        probs = (self.hflip, self.jitter_prob, self.grayscale_prob, self.blur_prob, self.solarize_prob)
        if not all(0 <= p <= 1 for p in probs):
            raise ConfigError("a view's probabilities (hflip, jitter_prob, grayscale_prob, ...) must lie in [0, 1]")


def byol_views() -> list[ViewConfig]:
    """BYOL's asymmetric pair (Grill et al., 2020, table 6): blur always on the first view; rarely blurred
    and sometimes solarised on the second; weaker saturation jitter than SimCLR."""
    common = dict(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)
    return [ViewConfig(blur_prob=1.0, **common), ViewConfig(blur_prob=0.1, solarize_prob=0.2, **common)]


def mae_view() -> ViewConfig:
    """MAE's light augmentation (He et al., 2022): a random resized crop and a flip, no colour changes."""
    return ViewConfig(jitter_prob=0.0, grayscale_prob=0.0)


@dataclass
class MultiCropConfig:
    """Multi-crop (Caron et al., 2020, SwAV; used by DINO): a few global views at full size and several
    small local views of small regions; only the global views are given to the teacher / used as codes.

    Args:
        global_views: one :class:`ViewConfig` per global view (DINO: blur on the first, solarisation on
            the second). Crop scales 0.4-1 (DINO; SwAV: 0.14-1).
        local_view: the settings of every local view (DINO: 96 of 224 pixels, scale 0.05-0.4; here 12 of
            28 pixels).
        n_local: number of local views (6 in DINO's and SwAV's small-compute settings).
    """

    global_views: list[ViewConfig] = field(
        default_factory=lambda: [
            ViewConfig(crop_scale=[0.4, 1.0], blur_prob=1.0, saturation=0.2),
            ViewConfig(crop_scale=[0.4, 1.0], blur_prob=0.1, solarize_prob=0.2, saturation=0.2),
        ]
    )
    local_view: ViewConfig = field(
        default_factory=lambda: ViewConfig(size=12, crop_scale=[0.05, 0.4], blur_prob=0.5, saturation=0.2)
    )
    n_local: int = 6

    def __post_init__(self) -> None:
        from ssl_core.errors import ConfigError

        if len(self.global_views) < 2:
            raise ConfigError(f"multi-crop needs at least 2 global views, got {len(self.global_views)}")
        if self.n_local < 0:
            raise ConfigError(f"n_local must be >= 0, got {self.n_local}")


def blur_kernel_size(sigma_max: float, size: int) -> int:
    """The odd side of a Gaussian kernel that holds +-3 ``sigma_max`` pixels, capped at the view's side.

    SimCLR's rule, a kernel of 10% of the side, holds the whole Gaussian at ImageNet's 224 pixels (23 for
    sigma up to 2) but cuts it to 3 pixels at 28, where sigma 2 becomes a near-uniform 3x3 box; this rule
    gives 13 at 28 pixels (sigma 2), 11 for 12-pixel local crops, 3 at the smallest views. The blur and its
    sigma range 0.1-2 are SimCLR's (Chen et al., 2020, appendix A).

    Args:
        sigma_max: the largest standard deviation the blur draws, in pixels.
        size: the side of the view, in pixels (the kernel stays below it, as reflect padding needs).

    Returns:
        The kernel's side, odd and at least 3.
    """
    k = 2 * math.ceil(3 * sigma_max) + 1
    cap = size if size % 2 else size - 1  # reflect padding needs (k - 1) / 2 < size
    return max(3, min(k, cap))


class GaussianBlur(v2.GaussianBlur):
    """A random Gaussian blur as PIL computes it, the blur of the field's PyTorch code; sigma is drawn
    uniformly from ``sigma`` (torch's generator, as every other draw of a view).

    The official PyTorch code of MoCo v2, MoCo v3, DINO and VICReg, and solo-learn and lightly, blur with PIL's
    ``ImageFilter.GaussianBlur(radius=sigma)``: three box-filter passes that approximate the Gaussian, each
    extending the image's border pixels. torchvision's ``gaussian_blur`` instead reflects the image at its
    border, which pulls a bright border row towards the rows inside it (at sigma 1, a border of 250 grey
    levels beside 150 and 60 blurs to 179, against PIL's 208). Small images, whose crops often end inside
    the object, show it: a classifier of simple view statistics told 10,000 of our BYOL view pairs from
    lightly's 61% of the time with torchvision's blur, 53% with a single border-extended convolution, and
    50% (chance) with PIL's (``benchmarks/vision_vicreg_views.py none twosample``). So uint8 images with 1
    or 3 channels (every view of ours) and PIL images are blurred by PIL; other inputs (float tensors,
    other channel counts) by torchvision with a ``kernel_size`` kernel.

    Args:
        kernel_size: odd side of torchvision's kernel, for the inputs PIL does not take
            (see :func:`blur_kernel_size`).
        sigma: ``(low, high)`` range of the standard deviation, in pixels.

    Shapes:
        - input: a uint8 ``(C, H, W)`` tensor (or a PIL image, or any input torchvision's blur takes)
        - output: the input's shape, dtype and type
    """

    def transform(self, inpt, params):
        blur = ImageFilter.GaussianBlur(radius=params["sigma"][0])
        if isinstance(inpt, Image.Image):
            return inpt.filter(blur)
        pil_ok = isinstance(inpt, torch.Tensor) and inpt.dtype == torch.uint8 and inpt.ndim == 3
        if not (pil_ok and inpt.shape[0] in (1, 3) and not isinstance(inpt, tv_tensors.Mask)):
            return super().transform(inpt, params)
        # through numpy rather than torchvision's to_pil_image / pil_to_tensor, which cost 50 us more a view
        x = inpt.as_subclass(torch.Tensor).detach().cpu()
        img = Image.fromarray(x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy())
        out = torch.from_numpy(np.array(img.filter(blur)))
        out = out[None] if out.ndim == 2 else out.permute(2, 0, 1).contiguous()
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out


def view_transform(cfg: ViewConfig, info: ImageInfo) -> v2.Compose:
    """Build the transform ``uint8 (C, H, W) -> normalised float (C, S, S)`` of one view
    (``S = cfg.size``, by default ``info.image_size``)."""
    rgb = info.channels == 3
    size = cfg.size or info.image_size
    ops: list[Callable] = [
        v2.RandomResizedCrop(size, scale=tuple(cfg.crop_scale), ratio=tuple(cfg.crop_ratio), antialias=True)
    ]
    if cfg.hflip > 0:
        ops.append(v2.RandomHorizontalFlip(cfg.hflip))
    if cfg.jitter_prob > 0:
        jitter = v2.ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation if rgb else 0, cfg.hue if rgb else 0)
        ops.append(v2.RandomApply([jitter], p=cfg.jitter_prob))
    if rgb and cfg.grayscale_prob > 0:
        ops.append(v2.RandomGrayscale(cfg.grayscale_prob))
    if cfg.blur_prob > 0:
        k = blur_kernel_size(cfg.blur_sigma[1], size)
        ops.append(v2.RandomApply([GaussianBlur(k, sigma=tuple(cfg.blur_sigma))], p=cfg.blur_prob))
    if cfg.solarize_prob > 0:
        ops.append(v2.RandomSolarize(128, p=cfg.solarize_prob))
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(info.mean, info.std)]
    return v2.Compose(ops)


# One view's random parameters, as torchvision's pipeline of that view draws them: a float vector per
# view and image (it crosses data-loader worker boundaries as one small tensor).
CROP = slice(0, 4)  # RandomResizedCrop's top, left, height, width
FLIP = 4  # 1: mirrored
JITTER = 5  # 1: colour-jittered
ORDER = slice(6, 10)  # ColorJitter's order of brightness, contrast, saturation, hue (its fn_idx)
FACTORS = slice(10, 14)  # ColorJitter's brightness, contrast, saturation and hue factors
GRAYSCALE = 14  # 1: converted to grayscale
BLUR_SIGMA = 15  # the blur's sigma in pixels; 0: not blurred
SOLARIZE = 16  # 1: solarised
N_PARAMS = 17


class View:
    """One view: its random parameters drawn per image, its pixels computed per batch.

    :meth:`draw` makes the random draws of :func:`view_transform`'s torchvision pipeline, in its order and
    with its own ``make_params`` (so a seed gives the parameters that pipeline would use), and
    :meth:`render` applies them to a batch with the kernels of :mod:`ssl_vision.transforms.kernels`, which
    repeat torchvision's (and PIL's) arithmetic per sample. The views equal the per-image pipeline's
    (crops within one grey level on a few pixels, the rest exactly: ``tests/test_view_kernels.py``) at a
    fraction of its cost: per image, only a few scalar draws.

    Args:
        cfg: the view's settings.
        info: the images' channels, size and normalisation.

    Shapes:
        - :meth:`draw`: uint8 ``(C, H, W)`` -> ``N_PARAMS`` numbers
        - :meth:`render`: uint8 ``(B, C, H, W)`` and ``(B, N_PARAMS)`` -> normalised float ``(B, C, S, S)``
    """

    def __init__(self, cfg: ViewConfig, info: ImageInfo) -> None:
        self.cfg, self.size = cfg, cfg.size or info.image_size
        self.reference = view_transform(cfg, info)
        self.mean = torch.tensor(info.mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(info.std, dtype=torch.float32).view(1, -1, 1, 1)
        # each random op of the pipeline, in order, with the slot its draw fills
        coin = {v2.RandomHorizontalFlip: FLIP, v2.RandomGrayscale: GRAYSCALE, v2.RandomSolarize: SOLARIZE}
        self._plan: list[tuple[str, Any, int | None]] = []
        for op in self.reference.transforms:
            if isinstance(op, v2.RandomResizedCrop):
                self._plan.append(("crop", op, None))
            elif type(op) in coin:  # a _RandomApplyTransform: applied when torch.rand(1) < p, no other draw
                self._plan.append(("coin", op, coin[type(op)]))
            elif isinstance(op, v2.RandomApply) and isinstance(op.transforms[0], v2.ColorJitter):
                self._plan.append(("jitter", op, None))
            elif isinstance(op, v2.RandomApply) and isinstance(op.transforms[0], v2.GaussianBlur):
                self._plan.append(("blur", op, None))
            elif not isinstance(op, (v2.ToDtype, v2.Normalize)):
                raise TypeError(f"View cannot draw the parameters of {type(op).__name__}")

    def draw(self, image: torch.Tensor) -> list[float]:
        """The view's random parameters for ``image`` (``N_PARAMS`` numbers), drawn from torch's global
        generator by the pipeline's own calls in the pipeline's order."""
        p = [0.0] * N_PARAMS
        p[ORDER] = [0.0, 1.0, 2.0, 3.0]
        p[FACTORS] = list(K.JITTER_IDENTITY)
        for kind, op, slot in self._plan:
            if kind == "crop":
                c = op.make_params([image])
                p[CROP] = [c["top"], c["left"], c["height"], c["width"]]
            elif kind == "coin":
                p[slot] = float(torch.rand(1).item() < op.p)
            elif torch.rand(1).item() < op.p:  # RandomApply: applied when torch.rand(1) < p
                params = op.transforms[0].make_params([image])
                if kind == "jitter":
                    p[JITTER] = 1.0
                    p[ORDER] = params["fn_idx"].tolist()
                    factors = (
                        params[n] for n in ("brightness_factor", "contrast_factor", "saturation_factor", "hue_factor")
                    )
                    p[FACTORS] = [K.JITTER_IDENTITY[i] if f is None else f for i, f in enumerate(factors)]
                else:
                    p[BLUR_SIGMA] = params["sigma"][0]
        return p

    def render(self, images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """The views of a batch of uint8 images under their drawn parameters, scaled and normalised."""
        if images.shape[1] not in (1, 3):
            raise ValueError(f"views take 1- or 3-channel images, got {images.shape[1]} channels")
        top, left, height, width = params[:, CROP].long().unbind(1)
        x = K.resized_crop(images, top, left, height, width, params[:, FLIP].bool(), self.size)
        x = K.color_jitter(x, params[:, JITTER].bool(), params[:, ORDER].long(), params[:, FACTORS])
        if (gray := params[:, GRAYSCALE].bool()).any():
            x[gray] = K.rgb_to_grayscale(x[gray])
        if (blur := params[:, BLUR_SIGMA] > 0).any():
            x[blur] = K.pil_gaussian_blur(x[blur], params[blur, BLUR_SIGMA])
        if (sol := params[:, SOLARIZE].bool()).any():
            x[sol] = K.solarize(x[sol])
        return x.mul_(1.0 / 255).sub_(self.mean).div_(self.std)  # torchvision's ToDtype(scale=True), Normalize


class MultiView:
    """Several views of each image: drawn per image (in data-loader workers, under the trainer's per-sample
    seed), computed per batch in :meth:`collate` (the trainer batches with a pretext's ``collate``).

    Args:
        views: one :class:`View` per output view (the same object may appear several times: each is its own
            draw).

    Shapes:
        - call: uint8 ``(C, H, W)`` -> ``(image, V lists of N_PARAMS numbers)``
        - :meth:`collate`: a list of those -> a tuple of ``V`` tensors ``(B, C, S_v, S_v)``
    """

    def __init__(self, views: Sequence[View]) -> None:
        self.views = list(views)

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, list[list[float]]]:
        return image, [v.draw(image) for v in self.views]

    def collate(self, items: Sequence[tuple[torch.Tensor, list[list[float]]]]) -> tuple[torch.Tensor, ...]:
        """Render the views of a batch of drawn items."""
        images = torch.stack([image for image, _ in items])
        params = torch.tensor([p for _, p in items])  # (B, V, N_PARAMS)
        return tuple(v.render(images, params[:, i]) for i, v in enumerate(self.views))


def multicrop_transform(cfg: MultiCropConfig, info: ImageInfo) -> MultiView:
    """The views of multi-crop: the global views first, then ``n_local`` local views.

    Shapes:
        - collated: ``len(global_views)`` tensors ``(B, C, S, S)``, then ``n_local`` tensors ``(B, C, s, s)``
    """
    local = View(cfg.local_view, info)
    return MultiView([View(v, info) for v in cfg.global_views] + [local] * cfg.n_local)

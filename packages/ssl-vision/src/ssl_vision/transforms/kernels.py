"""The pixel work of a view, on a whole batch at once, each image with its own random parameters.

torchvision's transforms v2 augment one image per call, and on 28x28 images the per-call overhead is
most of the cost (two SimCLR views of 256 images took 270 ms a step on 2 cores, 40% of the step). These
kernels do the same arithmetic on a batch, each sample with its own parameters, so that a view is drawn
per sample (its parameters, under the trainer's per-sample seed, see :mod:`ssl_vision.transforms.views`)
and computed per batch. Each kernel mirrors the torchvision (or PIL) operation it replaces, in the same
order of arithmetic, on float tensors holding the integer grey levels of uint8 images:

- :func:`resized_crop`: ``torchvision.transforms.v2.functional.resized_crop`` (bilinear, antialiased)
  followed by an optional horizontal flip, as two batched matrix products with the exact interpolation
  weights of ``torch.nn.functional.interpolate``; the only difference is torch's fixed-point uint8 kernel,
  which rounds a few pixels one grey level the other way.
- :func:`adjust_brightness`, :func:`adjust_contrast`, :func:`adjust_saturation`, :func:`adjust_hue`,
  :func:`color_jitter`, :func:`rgb_to_grayscale`, :func:`solarize`: torchvision's uint8 arithmetic
  (blend, clamp, truncate), with one factor per sample.
- :func:`pil_gaussian_blur`: PIL's ``ImageFilter.GaussianBlur(radius=sigma)`` bit for bit (three extended
  box passes per axis in PIL's 24-bit fixed point, the border pixel repeated), one sigma per sample.

The tests compare every kernel with its per-image original over random images and parameters.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

# ITU-R 601-2 luma, as torchvision's rgb_to_grayscale
_LUMA = (0.2989, 0.587, 0.114)


def _per_sample(values: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """A per-sample factor as a ``(B, 1, 1, 1)`` tensor of ``x``'s dtype."""
    v = torch.as_tensor(values, dtype=x.dtype, device=x.device)
    return v.reshape(-1, 1, 1, 1).expand(len(x), 1, 1, 1)


def _resize_weights(n_in: int, n_out: int) -> tuple[torch.Tensor, int]:
    """The ``(n_out, n_in)`` integer weights and their precision (bits) of torch's uint8 bilinear
    antialiased resize along one axis (the identity and precision 0 when ``n_in == n_out``: no resize).

    The float weights are those of ``interpolate`` (resizing the identity gives each output pixel's weights
    over the input pixels); the uint8 kernel scales them to int16 at the largest precision that keeps the
    largest weight below 2^15 and rounds each to the nearest integer ("Weights computation for uint8_t" in
    torch's ``UpSampleKernel.cpp``)."""
    if n_in == n_out:
        return torch.eye(n_in, dtype=torch.float64), 0
    eye = torch.eye(n_in, dtype=torch.float64)[None, None]  # (1, 1, n_in, n_in): one input pixel per row
    w = F.interpolate(eye, size=(n_out, n_in), mode="bilinear", antialias=True, align_corners=False)[0, 0]
    w_max = float(w.max())
    precision = 0
    while precision < 22 and int(0.5 + w_max * (1 << (precision + 1))) < (1 << 15):
        precision += 1
    return torch.floor(0.5 + w * (1 << precision)), precision


@functools.lru_cache(maxsize=64)
def _crop_tables(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_resize_weights` for every crop length ``n`` in ``0..n_in``: ``(n_in + 1, n_out, n_in)``
    weights, zero beyond column ``n``, and ``(n_in + 1,)`` precisions."""
    table = torch.zeros(n_in + 1, n_out, n_in, dtype=torch.float64)
    precision = torch.zeros(n_in + 1, dtype=torch.int64)
    for n in range(1, n_in + 1):
        table[n, :, :n], precision[n] = _resize_weights(n, n_out)
    return table, precision


def _crop_weights(
    start: torch.Tensor, length: torch.Tensor, n_in: int, n_out: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample ``(n_out, n_in)`` integer matrices that crop ``[start, start + length)`` and resize it to
    ``n_out`` (:func:`_resize_weights`), and each matrix's precision.

    Shapes:
        - start, length: ``(B,)`` integers
        - output: ``(B, n_out, n_in)`` float64, ``(B,)`` integers
    """
    table, precision = _crop_tables(n_in, n_out)
    offset = torch.arange(n_in) - start[:, None]  # (B, n_in): each input pixel's position in the crop
    inside = (offset >= 0).double()[:, None, :]  # pixels left of the crop; those right of it weigh 0
    index = offset.clamp(min=0)[:, None, :].expand(-1, n_out, -1)
    return table[length].gather(2, index) * inside, precision[length]


def _fixed_point(acc: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """``clamp((acc + 2^(p - 1)) >> p, 0, 255)`` per sample (``p = 0``: ``acc`` as it is), exact in float64."""
    p = precision.view(-1, 1, 1, 1)
    scale = torch.exp2(p.double())
    half = torch.where(p > 0, scale / 2, 0.0)
    return torch.floor((acc + half) / scale).clamp_(0, 255)


def resized_crop(
    images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, height: torch.Tensor, width: torch.Tensor,
    flip: torch.Tensor, size: int,
) -> torch.Tensor:  # fmt: skip
    """Crop each image to its box, resize the crop to ``size`` x ``size`` (bilinear, antialiased) and flip
    it horizontally where ``flip`` is set: torchvision's ``resized_crop`` then ``horizontal_flip`` on uint8
    images, with torch's uint8 arithmetic (int16 weights, a horizontal pass rounded to 8 bits, then a
    vertical one).

    Args:
        images: grey levels in [0, 255] (uint8 or float).
        top, left, height, width: each image's crop box, in pixels (torchvision's ``RandomResizedCrop``).
        flip: which crops to mirror.
        size: side of the output.

    Shapes:
        - images: ``(B, C, H, W)``; top, left, height, width, flip: ``(B,)``
        - output: ``(B, C, size, size)`` float32 grey levels
    """
    h_in, w_in = images.shape[-2:]
    wy, py = _crop_weights(top.long(), height.long(), h_in, size)  # (B, S, H)
    wx, px = _crop_weights(left.long(), width.long(), w_in, size)  # (B, S, W)
    flip = flip.bool()
    wx[flip] = wx[flip].flip(1)  # a mirrored output row reads the crop's columns from the right
    x = images.double() @ wx[:, None].transpose(-1, -2)  # (B, C, H, S): the horizontal pass
    x = _fixed_point(x, px)
    x = _fixed_point(wy[:, None] @ x, py)  # (B, C, S, S): the vertical pass
    return x.float()


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision's ``adjust_brightness`` on uint8 images, one factor per sample.

    Shapes:
        - x: ``(B, C, H, W)`` grey levels; factor: ``(B,)``; output: as ``x``
    """
    return (x * _per_sample(factor, x)).clamp_(0, 255).floor_()


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision's ``_blend`` on uint8 images: ``factor * x + (1 - factor) * other``, clamped, truncated."""
    f = _per_sample(factor, x)
    # addcmul rounds as torchvision's mul(ratio).add_(other, alpha=1 - ratio) does (a fused multiply-add)
    return torch.addcmul(x * f, other, 1.0 - f).clamp_(0, 255).floor_()


def _luma(x: torch.Tensor) -> torch.Tensor:
    """The grey levels of RGB images as torchvision computes them before truncation, ``(B, 1, H, W)``."""
    r, g, b = x.unbind(dim=-3)
    return r.mul(_LUMA[0]).add_(g, alpha=_LUMA[1]).add_(b, alpha=_LUMA[2]).unsqueeze(-3)  # torchvision's calls


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision's ``adjust_contrast`` on uint8 images: blend with the mean grey level of each image.

    Shapes:
        - x: ``(B, C, H, W)`` grey levels, C of 1 or 3; factor: ``(B,)``; output: as ``x``
    """
    grey = _luma(x).floor_() if x.shape[-3] == 3 else x
    return _blend(x, grey.mean(dim=(-3, -2, -1), keepdim=True), factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision's ``adjust_saturation`` on uint8 images (a no-op on 1 channel, as PIL).

    Shapes:
        - x: ``(B, C, H, W)`` grey levels; factor: ``(B,)``; output: as ``x``
    """
    if x.shape[-3] == 1:
        return x
    return _blend(x, _luma(x).floor_(), factor)


def _rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] to HSV in [0, 1] (the hexcone model), in torchvision's order of arithmetic."""
    r, g, b = rgb.unbind(dim=-3)
    minc, maxc = torch.aminmax(rgb, dim=-3)
    eqc = maxc == minc  # grey pixels: hue and saturation 0, and no division by 0
    ones = torch.ones_like(maxc)
    s = (maxc - minc) / torch.where(eqc, ones, maxc)
    rc, gc, bc = ((maxc.unsqueeze(-3) - rgb) / torch.where(eqc, ones, maxc - minc).unsqueeze(-3)).unbind(dim=-3)
    hg = (rc + 2.0 - bc) * ((maxc == g) & (maxc != r))
    hr = (bc - gc) * (maxc == r)
    hb = (gc + 4.0 - rc) * ((maxc != r) & (maxc != g))
    h = torch.fmod((hr + hg + hb) * (1.0 / 6.0) + 1.0, 1.0)
    return torch.stack((h, s, maxc), dim=-3)


def _hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """HSV in [0, 1] to RGB in [0, 1], in torchvision's order of arithmetic."""
    h, s, v = hsv.unbind(dim=-3)
    h6 = h * 6
    i = torch.floor(h6)
    f = h6 - i
    sector = i.to(torch.int64).remainder_(6)
    q = ((1.0 - s * f) * v).clamp_(0.0, 1.0)
    t = ((s * f + (1.0 - s)) * v).clamp_(0.0, 1.0)
    p = ((1.0 - s) * v).clamp_(0.0, 1.0)
    # (r, g, b) in the six sectors of the hexcone: (v,t,p), (q,v,p), (p,v,t), (p,q,v), (t,p,v), (v,p,q)
    corners = ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))
    table = torch.stack([torch.stack(c, dim=-3) for c in corners])  # (6, ..., 3, H, W)
    index = sector.unsqueeze(-3).expand(hsv.shape).unsqueeze(0)  # (1, ..., 3, H, W)
    return table.gather(0, index)[0]


def adjust_hue(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision's ``adjust_hue`` on uint8 images: rotate the hue by ``factor`` turns (a no-op on 1 channel).

    Shapes:
        - x: ``(B, C, H, W)`` grey levels; factor: ``(B,)`` in [-0.5, 0.5]; output: as ``x``
    """
    if x.shape[-3] == 1:
        return x
    hsv = _rgb_to_hsv(x * (1.0 / 255))  # torchvision's uint8 -> float
    h = (hsv[:, :1] + _per_sample(factor, x)).remainder_(1.0)
    rgb = _hsv_to_rgb(torch.cat([h, hsv[:, 1:]], dim=1))
    return rgb.mul_(256.0 - 1e-3).floor_()  # torchvision's float -> uint8: x * (255 + 1 - eps), truncated


_JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
# the factor that leaves an image unchanged, for the jitter strengths that are off (torchvision draws none)
JITTER_IDENTITY = (1.0, 1.0, 1.0, 0.0)


def color_jitter(x: torch.Tensor, applied: torch.Tensor, order: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """torchvision's ``ColorJitter``, each sample with its own order and factors, on the samples ``applied``.

    Args:
        x: grey levels.
        applied: which samples are jittered (``RandomApply``'s draw).
        order: each sample's permutation of (brightness, contrast, saturation, hue), ColorJitter's ``fn_idx``.
        factors: each sample's brightness, contrast, saturation and hue factors (:data:`JITTER_IDENTITY` for
            an operation that is off).

    Shapes:
        - x: ``(B, C, H, W)``; applied: ``(B,)``; order, factors: ``(B, 4)``; output: as ``x``
    """
    x = x.clone()
    for position in range(4):
        for op_index, op in enumerate(_JITTER_OPS):
            idx = (applied.bool() & (order[:, position] == op_index)).nonzero().squeeze(1)
            if len(idx) and not bool((factors[idx, op_index] == JITTER_IDENTITY[op_index]).all()):
                x[idx] = op(x[idx], factors[idx, op_index])
    return x


def rgb_to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """torchvision's ``rgb_to_grayscale`` with 3 output channels, on uint8 images.

    Shapes:
        - x: ``(B, 3, H, W)`` grey levels; output: as ``x``
    """
    return _luma(x).floor_().expand_as(x).contiguous()


def solarize(x: torch.Tensor, threshold: float = 128) -> torch.Tensor:
    """torchvision's ``solarize`` on uint8 images: invert the levels at or above ``threshold``.

    Shapes:
        - x: ``(B, C, H, W)`` grey levels; output: as ``x``
    """
    return torch.where(x >= threshold, 255 - x, x)


def _pil_box_radius(sigma: torch.Tensor, passes: int = 3) -> np.ndarray:
    """The fractional box radius PIL uses for a Gaussian of standard deviation ``sigma`` (Gwosdek et al.,
    2011, "Theoretical Foundations of Gaussian Convolution by Extended Box Filtering"), in PIL's mix of
    single and double precision (``_gaussian_blur_radius`` in PIL's BoxBlur.c), for each sigma."""
    f = np.float32
    s = sigma.numpy().astype(f)
    sigma2 = s * s / f(passes)
    length = np.sqrt(12.0 * sigma2.astype(np.float64) + 1.0).astype(f)  # sqrt in double, stored as float
    whole = np.floor((length.astype(np.float64) - 1.0) / 2.0).astype(f)
    a = (f(2) * whole + f(1)) * (whole * (whole + f(1)) - f(3) * sigma2)
    a = a / (f(6) * (sigma2 - (whole + f(1)) * (whole + f(1))))
    return whole + a


def _box_pass(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """One extended box pass along the last axis in PIL's 24-bit fixed point, the border pixel repeated.

    ``taps``: per-sample integer weights of the offsets ``-R..R``, ``(B, 2R + 1)``; float64 holds PIL's
    32-bit integer sums exactly."""
    r = (taps.shape[1] - 1) // 2
    padded = torch.cat([x[..., :1].expand(*x.shape[:-1], r), x, x[..., -1:].expand(*x.shape[:-1], r)], dim=-1)
    n = x.shape[-1]
    acc = torch.zeros_like(x)
    for k in range(2 * r + 1):
        acc.addcmul_(taps[:, k, None, None, None], padded[..., k : k + n])
    return torch.floor((acc + 2.0**23) / 2.0**24)


def pil_gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """PIL's ``ImageFilter.GaussianBlur(radius=sigma)`` on uint8 images, bit for bit, one sigma per sample.

    PIL approximates the Gaussian with three passes of an extended box filter per axis (all horizontal
    passes, then all vertical), each rounding to 8 bits and repeating the border pixel: the box of radius
    ``r = whole + fraction`` weighs the ``2 * whole + 1`` inner pixels ``ww = 2^24 / (2r + 1)`` each
    (single precision, truncated) and the two next ones ``fw`` each, so that all weights sum to 2^24.

    Shapes:
        - x: ``(B, C, H, W)`` grey levels; sigma: ``(B,)`` positive; output: as ``x``
    """
    radius = _pil_box_radius(sigma.float())
    whole = radius.astype(np.int64)  # C's (int) truncation
    ww = (np.float32(1 << 24) / (radius * np.float32(2) + np.float32(1))).astype(np.int64)
    fw = ((1 << 24) - (2 * whole + 1) * ww) // 2
    r = int(whole.max()) + 1
    k = torch.arange(-r, r + 1).abs()[None]  # (1, 2r + 1)
    whole, ww, fw = (torch.from_numpy(v)[:, None].double() for v in (whole, ww, fw))
    taps = torch.where(k <= whole, ww, torch.where(k == whole + 1, fw, 0.0))  # (B, 2r + 1)
    out = x.double()
    for _ in range(3):
        out = _box_pass(out, taps)
    out = out.transpose(-1, -2)
    for _ in range(3):
        out = _box_pass(out, taps)
    return out.transpose(-1, -2).to(x.dtype).contiguous()

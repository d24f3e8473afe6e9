"""Colour deconvolution into haematoxylin, eosin and DAB (Ruifrok & Johnston, 2001) and the HED stain
augmentation of Tellez et al. (2018, 2019), in torch.

The conversion is scikit-image's (``skimage.color.rgb2hed`` / ``hed2rgb``), written for ``(3, H, W)`` or
``(B, 3, H, W)`` tensors: RGB values are clamped to at least ``1e-6``, the optical density ``-log(rgb)`` is
divided by ``-log(1e-6)`` (so a stain value of 1 is full absorption of a channel) and multiplied by the inverse
of scikit-image's stain matrix :data:`RGB_FROM_HED`; negative stain amounts are clamped to 0. The way back
multiplies by the stain matrix, exponentiates and clips to ``[0, 1]``. So ``hed_to_rgb(rgb_to_hed(x)) == x``
wherever no clamp was active (every pixel whose stain amounts are all non-negative and whose channels are at
least ``1e-6``), and ``rgb_to_hed(hed_to_rgb(s)) == s`` for non-negative ``s`` that stay in ``[0, 1]`` in RGB.
"""

from __future__ import annotations

import math

import torch

# scikit-image's stain matrix (skimage.color.colorconv.rgb_from_hed): one row per stain (H, E, DAB), the
# optical density it adds to R, G and B. scikit-image uses these rows as they are (not normalised).
RGB_FROM_HED = torch.tensor([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=torch.float64)
HED_FROM_RGB = torch.linalg.inv(RGB_FROM_HED)
EPS = 1e-6
LOG_ADJUST = math.log(EPS)  # negative: -13.8


def _check(x: torch.Tensor, name: str) -> None:
    if x.ndim not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(f"{name} takes (3, H, W) or (B, 3, H, W) tensors, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} takes float tensors (RGB in [0, 1]), got {x.dtype}; divide uint8 images by 255")


def _mix(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``x`` (channels on dim -3) times ``matrix`` as scikit-image's ``pixels @ matrix`` (channels last)."""
    m = matrix.to(x.dtype if x.dtype == torch.float64 else torch.float32).to(x.device)
    return torch.einsum("...chw,cd->...dhw", x, m)


def rgb_to_hed(x: torch.Tensor) -> torch.Tensor:
    """RGB in ``[0, 1]`` -> stain amounts (H, E, DAB), as ``skimage.color.rgb2hed`` (see the module docstring).

    Args:
        x: float RGB tiles in ``[0, 1]``.

    Shapes:
        - x: ``(3, H, W)`` or ``(B, 3, H, W)``; output: the same shape, stain amounts ``>= 0``
    """
    _check(x, "rgb_to_hed")
    od = torch.log(x.clamp_min(EPS)) / LOG_ADJUST
    return _mix(od, HED_FROM_RGB).clamp_min(0)


def hed_to_rgb(s: torch.Tensor) -> torch.Tensor:
    """Stain amounts (H, E, DAB) -> RGB clipped to ``[0, 1]``, as ``skimage.color.hed2rgb``.

    Shapes:
        - s: ``(3, H, W)`` or ``(B, 3, H, W)``; output: the same shape
    """
    _check(s, "hed_to_rgb")
    return torch.exp(_mix(s * LOG_ADJUST, RGB_FROM_HED)).clamp(0, 1)


class HEDJitter:
    """Stain augmentation in HED space (Tellez et al., 2018, "Whole-slide mitosis detection in H&E breast
    histology using PHH3 as a reference to train distilled stain-invariant convolutional networks"; 2019,
    "Quantifying the effects of data augmentation and stain color normalization"): deconvolve the tile into
    H, E and DAB, scale and shift each stain, ``s_c' = alpha_c * s_c + beta_c`` with
    ``alpha_c ~ U(1 - sigma, 1 + sigma)`` and ``beta_c ~ U(-bias, bias)``, and convolve back to RGB (clipped to
    ``[0, 1]``).

    ``bias`` is in the stain units of :func:`rgb_to_hed` (scikit-image's: optical density divided by
    ``-log(1e-6)`` = 13.8), where a dark haematoxylin nucleus is about 0.1-0.2 and white background 0: a bias of
    0.01 on one stain darkens a white pixel's most affected channel by 9-13% (R for H, G for E, B for DAB). The
    defaults (0.05, 0.01) change the pixels of scikit-image's IHC image by 0.043 on average (of 1).

    Args:
        sigma: half-width of the scale's range around 1 (0: no scaling).
        bias: half-width of the shift's range around 0 (0: no shift).

    Shapes:
        - call: ``(3, H, W)`` or ``(B, 3, H, W)`` -> the same; each tile its own draw
        - :meth:`draw`: ``n`` -> ``(alpha, beta)``, two ``(n, 3)`` tensors
    """

    def __init__(self, sigma: float = 0.05, bias: float = 0.01) -> None:
        if not 0 <= sigma < 1 or bias < 0:
            raise ValueError(f"HEDJitter needs 0 <= sigma < 1 and bias >= 0, got sigma={sigma}, bias={bias}")
        self.sigma, self.bias = float(sigma), float(bias)

    def draw(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-tile, per-stain ``(alpha, beta)`` from ``generator`` (torch's global one when ``None``)."""
        alpha = 1 + (torch.rand(n, 3, generator=generator, dtype=torch.float64) * 2 - 1) * self.sigma
        beta = (torch.rand(n, 3, generator=generator, dtype=torch.float64) * 2 - 1) * self.bias
        return alpha, beta

    @staticmethod
    def apply(x: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """Scale and shift the stains of ``x`` by given ``alpha``, ``beta``.

        Shapes:
            - x: ``(B, 3, H, W)``; alpha, beta: ``(B, 3)``; output: ``(B, 3, H, W)``
        """
        s = rgb_to_hed(x)
        a, b = alpha.to(s.dtype).view(-1, 3, 1, 1), beta.to(s.dtype).view(-1, 3, 1, 1)
        return hed_to_rgb(s * a + b)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check(x, "HEDJitter")
        single = x.ndim == 3
        xb = x[None] if single else x
        alpha, beta = self.draw(len(xb), generator)
        out = self.apply(xb, alpha, beta)
        return out[0] if single else out

    def __repr__(self) -> str:
        return f"HEDJitter(sigma={self.sigma}, bias={self.bias})"

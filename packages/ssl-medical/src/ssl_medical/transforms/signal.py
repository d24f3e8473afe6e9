"""The six signal transformations of Sarkar & Etemad (2020, "Self-supervised ECG Representation Learning for Emotion
Recognition"): noise addition at a signal-to-noise ratio, scaling, negation, horizontal flip (temporal inversion),
permutation of segments and time warping.

Every function takes a series ``(..., C, L)`` (one ``(C, L)`` sample or a batch) and returns a new tensor of the same
shape; the random ones draw from ``generator`` (torch's global generator when ``None``, as the pretext in data-loader
workers needs), one draw per series (the leading dimensions), shared by its channels.

The default parameters of :class:`SignalTransformConfig` are those of the authors' code (SSL-ECG): 15 dB SNR, scale
factor 1.1, 20 permutation pieces, 9 time-warping pieces stretched or squeezed by 1.05.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ssl_core.errors import ConfigError

# the transformations' names, in the order of the method's heads
TRANSFORMS = ("noise", "scale", "negate", "flip", "permute", "time_warp")


def _check(x: torch.Tensor) -> None:
    if x.ndim < 2 or not x.is_floating_point():
        raise ValueError(f"a signal must be a float tensor (..., C, L), got {x.dtype} of shape {tuple(x.shape)}")


def add_noise(x: torch.Tensor, snr_db: float = 15.0, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Add white Gaussian noise at a signal-to-noise ratio of ``snr_db`` decibels.

    The noise variance of each channel is its signal power over the ratio,
    :math:`\sigma^2 = \overline{x^2} / 10^{\mathrm{SNR}/10}`, so that
    :math:`10 \log_{10}(\overline{x^2} / \overline{n^2})` is ``snr_db`` on average.

    Args:
        x: signals ``(..., C, L)``.
        snr_db: signal-to-noise ratio in dB (SSL-ECG: 15).
        generator: source of the noise.
    """
    _check(x)
    power = x.pow(2).mean(-1, keepdim=True)
    std = (power / 10 ** (snr_db / 10)).sqrt()
    return x + std * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def scale(x: torch.Tensor, factor: float = 1.1) -> torch.Tensor:
    """Multiply the amplitude by ``factor`` (SSL-ECG: 1.1)."""
    _check(x)
    return x * factor


def negate(x: torch.Tensor) -> torch.Tensor:
    """Invert the amplitude: ``-x``."""
    _check(x)
    return -x


def flip(x: torch.Tensor) -> torch.Tensor:
    """Horizontal flip (temporal inversion): the series read backwards along ``L``."""
    _check(x)
    return x.flip(-1)


def segment_bounds(length: int, pieces: int) -> list[tuple[int, int]]:
    """``pieces`` contiguous segments covering ``[0, length)`` with lengths differing by at most one (the first
    ``length % pieces`` one sample longer), as ``(start, end)`` pairs."""
    if not 1 <= pieces <= length:
        raise ConfigError(f"cannot cut a series of {length} samples into {pieces} pieces: use 1 to {length} pieces")
    base, extra = divmod(length, pieces)
    bounds, start = [], 0
    for i in range(pieces):
        end = start + base + (i < extra)
        bounds.append((start, end))
        start = end
    return bounds


def permute(x: torch.Tensor, pieces: int = 20, generator: torch.Generator | None = None) -> torch.Tensor:
    """Cut each series into ``pieces`` segments (:func:`segment_bounds`) and put them back in a random order.

    The order is a uniform random permutation redrawn while it is the identity (for ``pieces >= 2``), so a
    permuted series always differs in order from the original (the pretext labels it as permuted).

    Args:
        x: signals ``(..., C, L)``.
        pieces: segments (SSL-ECG: 20).
        generator: source of the orders (one per series).
    """
    _check(x)
    bounds = segment_bounds(x.shape[-1], pieces)
    lead = x.shape[:-2]
    flat = x.reshape(-1, *x.shape[-2:])
    out = torch.empty_like(flat)
    for i in range(flat.shape[0]):
        order = torch.randperm(pieces, generator=generator)
        while pieces > 1 and bool((order == torch.arange(pieces)).all()):
            order = torch.randperm(pieces, generator=generator)
        out[i] = torch.cat([flat[i, :, bounds[j][0] : bounds[j][1]] for j in order.tolist()], dim=-1)
    return out.reshape(*lead, *x.shape[-2:])


def warp_grid(length: int, pieces: int, stretch: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """The sample positions (in input samples) that :func:`time_warp` reads, for one series.

    Half of the pieces (``ceil(pieces / 2)``, drawn at random) are stretched by ``stretch`` and the others squeezed
    by ``1 / stretch``: piece ``i`` of ``n_i`` input samples gets an output duration proportional to
    ``n_i * factor_i``, rescaled so that the output has ``length`` samples again. The map from output to input time
    is piecewise linear, increasing, and sends the first output sample to 0 and the last to ``length - 1``.

    Shapes:
        - output: ``(length,)`` float positions in ``[0, length - 1]``
    """
    if stretch <= 0:
        raise ConfigError(f"the time-warping stretch factor must be positive, got {stretch}")
    bounds = segment_bounds(length, pieces)
    chosen = torch.randperm(pieces, generator=generator)[: math.ceil(pieces / 2)]
    factors = torch.full((pieces,), 1.0 / stretch, dtype=torch.float64)
    factors[chosen] = stretch
    sizes = torch.tensor([e - s for s, e in bounds], dtype=torch.float64)
    # knots: input time (piece boundaries) vs output time (cumulative warped durations), both on [0, length - 1]
    t_in = torch.cat([torch.zeros(1, dtype=torch.float64), sizes.cumsum(0)]) * (length - 1) / length
    t_out = torch.cat([torch.zeros(1, dtype=torch.float64), (sizes * factors).cumsum(0)])
    t_out = t_out * (length - 1) / t_out[-1]
    q = torch.arange(length, dtype=torch.float64)
    k = torch.searchsorted(t_out, q, right=True).clamp(1, pieces) - 1
    frac = (q - t_out[k]) / (t_out[k + 1] - t_out[k])
    return (t_in[k] + frac * (t_in[k + 1] - t_in[k])).clamp(0, length - 1)


def resample_at(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of ``x`` along its last axis at fractional ``positions``.

    Shapes:
        - x: ``(..., L)``; positions: ``(M,)`` in ``[0, L - 1]``; output ``(..., M)``
    """
    lo = positions.floor().long().clamp(0, x.shape[-1] - 1)
    hi = (lo + 1).clamp(max=x.shape[-1] - 1)
    w = (positions - lo).to(x.dtype)
    return x[..., lo] * (1 - w) + x[..., hi] * w


def time_warp(
    x: torch.Tensor, pieces: int = 9, stretch: float = 1.05, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Stretch half of ``pieces`` segments by ``stretch`` and squeeze the others by ``1 / stretch``
    (:func:`warp_grid`, one draw per series), then resample linearly to the original length.

    Args:
        x: signals ``(..., C, L)``.
        pieces: segments (SSL-ECG: 9).
        stretch: stretch factor (SSL-ECG: 1.05).
        generator: source of the stretched pieces.
    """
    _check(x)
    length = x.shape[-1]
    flat = x.reshape(-1, *x.shape[-2:])
    out = torch.stack([resample_at(s, warp_grid(length, pieces, stretch, generator)) for s in flat])
    return out.reshape(x.shape)


@dataclass
class SignalTransformConfig:
    """The transformations' parameters (``--set method.transforms.<name>=<value>``).

    Args:
        names: the transformations to recognise, among ``noise``, ``scale``, ``negate``, ``flip``, ``permute``,
            ``time_warp`` (all six by default, as the paper).
        snr_db: noise signal-to-noise ratio in dB (15).
        scale_factor: amplitude factor of ``scale`` (1.1).
        permute_pieces: segments of ``permute`` (20).
        warp_pieces: segments of ``time_warp`` (9).
        warp_stretch: stretch factor of ``time_warp`` (1.05; the other pieces are squeezed by its inverse).
    """

    names: tuple[str, ...] = TRANSFORMS
    snr_db: float = 15.0
    scale_factor: float = 1.1
    permute_pieces: int = 20
    warp_pieces: int = 9
    warp_stretch: float = 1.05

    def __post_init__(self) -> None:
        self.names = tuple(self.names)
        unknown = [n for n in self.names if n not in TRANSFORMS]
        if unknown or not self.names or len(set(self.names)) != len(self.names):
            raise ConfigError(
                f"transforms.names must be distinct names among {', '.join(TRANSFORMS)}, got {list(self.names)}"
            )
        if self.scale_factor <= 0 or self.scale_factor == 1:
            raise ConfigError(f"transforms.scale_factor must be positive and not 1, got {self.scale_factor}")
        if self.permute_pieces < 2 or self.warp_pieces < 2:
            raise ConfigError(
                f"transforms.permute_pieces and warp_pieces must be >= 2, got {self.permute_pieces}, {self.warp_pieces}"
            )
        if self.warp_stretch <= 0 or self.warp_stretch == 1:
            raise ConfigError(f"transforms.warp_stretch must be positive and not 1, got {self.warp_stretch}")


def apply_transform(
    name: str, x: torch.Tensor, config: SignalTransformConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Apply the transformation ``name`` with the parameters of ``config``.

    Shapes:
        - x: ``(..., C, L)``; output: the same
    """
    if name == "noise":
        return add_noise(x, config.snr_db, generator)
    if name == "scale":
        return scale(x, config.scale_factor)
    if name == "negate":
        return negate(x)
    if name == "flip":
        return flip(x)
    if name == "permute":
        return permute(x, config.permute_pieces, generator)
    if name == "time_warp":
        return time_warp(x, config.warp_pieces, config.warp_stretch, generator)
    raise ConfigError(f"unknown signal transformation {name!r}: use one of {', '.join(TRANSFORMS)}")

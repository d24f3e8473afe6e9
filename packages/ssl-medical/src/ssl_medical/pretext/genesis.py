"""Models Genesis corruptions (Zhou et al., 2019/2021, "Models Genesis: Generic Autodidactic Models for 3D Medical
Image Analysis"), after the reference code (github MrGiovanni/ModelsGenesis, ``pytorch/utils.py`` and
``pytorch/config.py``).

Every function takes a ``(C, D, H, W)`` tensor (intensities in ``[0, 1]``) and a ``torch.Generator`` (``None``: torch's
global generator) and returns a new tensor; the input is never modified. The reference's probabilities:
flip 0.4 (repeated, at most 3 flips, applied to input and target), local pixel shuffling 0.5, non-linear intensity
transformation 0.9, painting 0.9, of which in-painting 0.2 and out-painting 0.8. ``randint(a, b)`` below includes
both ends, as Python's ``random.randint`` of the reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb

import torch

from ssl_core.errors import ConfigError

FLIP_RATE = 0.4
LOCAL_RATE = 0.5
NONLINEAR_RATE = 0.9
PAINT_RATE = 0.9
INPAINT_RATE = 0.2  # of the painted samples; the others are out-painted (outpaint_rate 0.8)
SHUFFLE_BLOCKS_PER_VOXEL = 10000 / (64 * 64 * 32)
"""The reference shuffles 10,000 blocks in a 64 x 64 x 32 cube; we keep that density for other patch sizes."""
MIN_SIDE = 16
"""Smallest patch side the painting boxes fit in (they keep 3 voxels from every face)."""


def _randint(low: int, high: int, generator: torch.Generator | None) -> int:
    return int(torch.randint(low, high + 1, (1,), generator=generator))


def _rand(generator: torch.Generator | None) -> float:
    return float(torch.rand((), generator=generator))


def _check(x: torch.Tensor, min_side: int = 1) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"Models Genesis corruptions take (C, D, H, W) tensors, got {getattr(x, 'shape', type(x))}")
    if min(x.shape[1:]) < min_side:
        raise ConfigError(
            f"Models Genesis painting needs patch sides >= {min_side}, got {tuple(x.shape[1:])}; use a larger "
            "data.patch_size"
        )


# ------------------------------------------------------------------------------------------ non-linear intensity
def bezier_curve(points: Sequence[Sequence[float]], n_times: int = 100000) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's ``bezier_curve``: points of the Bezier curve of the control ``points``, sampled at ``n_times``
    values of ``t`` in ``[0, 1]``, with the reference's Bernstein order (``t = 0`` is the LAST control point).

    Shapes:
        - points: ``n`` pairs ``(x, y)``; output: ``x`` and ``y``, each ``(n_times,)`` float64.
    """
    p = torch.as_tensor(points, dtype=torch.float64)
    n = p.shape[0] - 1
    t = torch.linspace(0.0, 1.0, n_times, dtype=torch.float64)
    basis = torch.stack([comb(n, i) * t ** (n - i) * (1 - t) ** i for i in range(n + 1)])  # (n + 1, T)
    return p[:, 0] @ basis, p[:, 1] @ basis


def interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """``numpy.interp`` in torch: piecewise-linear interpolation of ``(xp, fp)`` at ``x`` (``xp`` increasing), ends
    clamped to ``fp[0]`` / ``fp[-1]``. Computed in float64, returned in ``x``'s dtype."""
    v = x.double().reshape(-1)
    xp, fp = xp.double(), fp.double()
    idx = torch.searchsorted(xp, v, right=True).clamp(1, xp.numel() - 1)
    x0, x1, y0, y1 = xp[idx - 1], xp[idx], fp[idx - 1], fp[idx]
    dx = x1 - x0
    w = torch.where(dx > 0, (v - x0) / torch.where(dx > 0, dx, torch.ones_like(dx)), torch.zeros_like(dx))
    out = y0 + w * (y1 - y0)
    out = torch.where(v <= xp[0], fp[0], out)
    out = torch.where(v >= xp[-1], fp[-1], out)
    return out.reshape(x.shape).to(x.dtype)


def intensity_curve(x: torch.Tensor, points: Sequence[Sequence[float]], flip: bool, n_times: int = 100000):
    """Map intensities through the Bezier curve of ``points`` as the reference does: the curve's ``x`` values are
    sorted; with ``flip`` its ``y`` values stay in curve order (from the last control point to the first: an
    intensity inversion), otherwise they are sorted too (a monotone increasing map)."""
    xs, ys = bezier_curve(points, n_times)
    xs = xs.sort().values
    if not flip:
        ys = ys.sort().values
    return interp(x, xs, ys)


def nonlinear_transformation(
    x: torch.Tensor, generator: torch.Generator | None = None, prob: float = NONLINEAR_RATE, n_times: int = 100000
) -> torch.Tensor:
    """With probability ``prob``, a random monotone intensity map: a cubic Bezier curve from ``(0, 0)`` to ``(1, 1)``
    with two uniform random control points, flipped (decreasing) half of the time (see :func:`intensity_curve`).

    Shapes:
        - x: ``(C, D, H, W)`` in ``[0, 1]``; output: the same, in ``[0, 1]``.
    """
    _check(x)
    if _rand(generator) >= prob:
        return x.clone()
    c = torch.rand(4, generator=generator, dtype=torch.float64).tolist()
    points = [[0.0, 0.0], [c[0], c[1]], [c[2], c[3]], [1.0, 1.0]]
    flip = _rand(generator) < 0.5
    return intensity_curve(x, points, flip, n_times)


# ------------------------------------------------------------------------------------------ local pixel shuffling
def shuffle_blocks(x: torch.Tensor, corners: torch.Tensor, sizes: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Write a permutation of each block of the ORIGINAL ``x`` into a copy, blocks in order (a later block
    overwrites an earlier one where they overlap), without a Python loop over the blocks.

    Block ``b`` covers ``corners[b] + [0, sizes[b])`` per axis; its voxels, in C order, receive the block's voxels
    taken in the order of a stable ``argsort(keys[b, :n_b])`` over the block's first ``n_b = prod(sizes[b])``
    keys (keys in ``[0, 1)``, as ``torch.rand`` draws them). Every channel gets the same permutation.

    Shapes:
        - x: ``(C, D, H, W)``; corners, sizes: ``(N, 3)`` int64; keys: ``(N, m)`` with ``m >= max prod(sizes)``.
    """
    c, d, h, w = x.shape
    n = corners.shape[0]
    out = x.clone()
    if n == 0:
        return out
    m = keys.shape[1]
    sx, sy, sz = sizes.unbind(1)
    count = sx * sy * sz  # (N,)
    j = torch.arange(m)
    valid = j[None, :] < count[:, None]  # (N, m): the first n_b entries
    # C-order offsets of the j-th voxel of each block
    oz = j[None, :] % sz[:, None]
    oy = (j[None, :] // sz[:, None]) % sy[:, None]
    ox = j[None, :] // (sz * sy)[:, None]
    flat = ((corners[:, 0:1] + ox) * h + corners[:, 1:2] + oy) * w + corners[:, 2:3] + oz  # (N, m)
    block = torch.arange(n)[:, None].expand(n, m)[valid]  # block of each valid entry, in block order
    dest = flat[valid]
    # one sort of (block + key) permutes every block's entries by its keys (keys in [0, 1), exact in float64)
    src = dest[(block.to(torch.float64) + keys[valid].to(torch.float64)).argsort(stable=True)]
    last = torch.full((d * h * w,), -1, dtype=torch.int64).scatter_reduce(0, dest, block, "amax")
    keep = block == last[dest]
    dest, src = dest[keep], src[keep]
    xf, of = x.reshape(c, -1), out.view(c, -1)
    of[:, dest] = xf[:, src]
    return out


def local_pixel_shuffling(
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    prob: float = LOCAL_RATE,
    num_blocks: int | None = None,
) -> torch.Tensor:
    """With probability ``prob``, shuffle the voxels inside many small random blocks (block sides
    ``randint(1, side // 10)``, anywhere in the volume), each block's values taken from the original volume.

    Args:
        x: ``(C, D, H, W)``.
        generator: the random source.
        prob: probability of shuffling (reference: 0.5).
        num_blocks: blocks to shuffle (reference: 10,000 in a 64 x 64 x 32 cube; default: the same density,
            :data:`SHUFFLE_BLOCKS_PER_VOXEL` times the voxel count).
    """
    _check(x)
    if _rand(generator) >= prob:
        return x.clone()
    shape = torch.tensor(x.shape[1:])
    if num_blocks is None:
        num_blocks = max(1, round(SHUFFLE_BLOCKS_PER_VOXEL * int(shape.prod())))
    high = (shape // 10).clamp(min=1)
    u = torch.rand(num_blocks, 3, generator=generator, dtype=torch.float64)
    sizes = 1 + (u * high).long().clamp(max=high - 1)  # randint(1, side // 10)
    u = torch.rand(num_blocks, 3, generator=generator, dtype=torch.float64)
    corners = (u * (shape - sizes + 1)).long().clamp(max=shape - sizes)  # randint(0, side - size)
    m = int(high.prod())
    keys = torch.rand(num_blocks, m, generator=generator)
    return shuffle_blocks(x, corners, sizes, keys)


# ------------------------------------------------------------------------------------------ painting
def _box(shape: Sequence[int], lows: Sequence[int], highs: Sequence[int], generator) -> tuple[list[int], list[int]]:
    """A box with sides ``randint(low, high)`` and corner ``randint(3, side - size - 3)`` per axis."""
    sizes = [_randint(lo, hi, generator) for lo, hi in zip(lows, highs, strict=True)]
    corners = [_randint(3, s - b - 3, generator) for s, b in zip(shape, sizes, strict=True)]
    return corners, sizes


def _slices(corners: Sequence[int], sizes: Sequence[int]) -> tuple[slice, ...]:
    return (slice(None), *(slice(c, c + s) for c, s in zip(corners, sizes, strict=True)))


def in_painting_boxes(shape: Sequence[int], generator: torch.Generator | None = None) -> list[tuple[list, list]]:
    """The boxes :func:`image_in_painting` fills: while fewer than 5 and a uniform draw is below 0.95, one more box
    with sides ``randint(side // 6, side // 3)``. Returns ``[(corner, size), ...]``."""
    boxes = []
    while len(boxes) < 5 and _rand(generator) < 0.95:
        boxes.append(_box(shape, [s // 6 for s in shape], [s // 3 for s in shape], generator))
    return boxes


def image_in_painting(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace up to 5 random boxes (see :func:`in_painting_boxes`) by uniform noise in ``[0, 1)``.

    Shapes:
        - x: ``(C, D, H, W)``, sides >= 16; output: the same.
    """
    _check(x, MIN_SIDE)
    out = x.clone()
    for corners, sizes in in_painting_boxes(x.shape[1:], generator):  # boxes first, then their noise
        sl = _slices(corners, sizes)
        out[sl] = torch.rand(out[sl].shape[1:], generator=generator, dtype=x.dtype).expand_as(out[sl])
    return out


def out_painting_boxes(shape: Sequence[int], generator: torch.Generator | None = None) -> list[tuple[list, list]]:
    """The boxes :func:`image_out_painting` keeps: one, then while fewer than 5 and a uniform draw is below 0.95
    one more, each with sides ``side - randint(3 * side // 7, 4 * side // 7)``."""

    def box():
        # the reference draws each side as side - randint(3 * side // 7, 4 * side // 7)
        sizes = [s - _randint(3 * s // 7, 4 * s // 7, generator) for s in shape]
        corners = [_randint(3, s - b - 3, generator) for s, b in zip(shape, sizes, strict=True)]
        return corners, sizes

    boxes = [box()]
    while len(boxes) < 5 and _rand(generator) < 0.95:
        boxes.append(box())
    return boxes


def image_out_painting(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace the whole volume by uniform noise in ``[0, 1)`` except inside 1 to 5 random boxes (see
    :func:`out_painting_boxes`), which keep the original voxels.

    Shapes:
        - x: ``(C, D, H, W)``, sides >= 16; output: the same.
    """
    _check(x, MIN_SIDE)
    boxes = out_painting_boxes(x.shape[1:], generator)  # the reference draws the noise first: same distribution
    out = torch.rand(x.shape, generator=generator, dtype=x.dtype)
    for corners, sizes in boxes:
        sl = _slices(corners, sizes)
        out[sl] = x[sl]
    return out


# ------------------------------------------------------------------------------------------ the whole corruption
def random_flips(
    x: torch.Tensor, generator: torch.Generator | None = None, prob: float = FLIP_RATE
) -> tuple[torch.Tensor, list[int]]:
    """The reference's ``data_augmentation``: while fewer than 3 flips and a uniform draw is below ``prob``, flip a
    random spatial axis. Returns the flipped volume and the flipped axes (of ``x``, in order)."""
    axes = []
    while len(axes) < 3 and _rand(generator) < prob:
        axes.append(1 + _randint(0, 2, generator))
    for a in axes:
        x = x.flip(a)
    return x, axes


def genesis_corrupt(
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    flip_rate: float = FLIP_RATE,
    local_rate: float = LOCAL_RATE,
    nonlinear_rate: float = NONLINEAR_RATE,
    paint_rate: float = PAINT_RATE,
    inpaint_rate: float = INPAINT_RATE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's ``generate_pair`` for one sample: flips (input and target alike), then local pixel shuffling,
    the non-linear intensity map, and with probability ``paint_rate`` in-painting (``inpaint_rate``) or
    out-painting (otherwise).

    Returns:
        ``(corrupted, target)``, both ``(C, D, H, W)``: the network restores ``target`` from ``corrupted``.
    """
    _check(x, MIN_SIDE)
    for name, p in [("flip", flip_rate), ("local", local_rate), ("nonlinear", nonlinear_rate)]:
        if not 0 <= p <= 1:
            raise ConfigError(f"{name}_rate must be in [0, 1], got {p}")
    if not (0 <= paint_rate <= 1 and 0 <= inpaint_rate <= 1):
        raise ConfigError(f"paint_rate and inpaint_rate must be in [0, 1], got {paint_rate}, {inpaint_rate}")
    target, _ = random_flips(x, generator, flip_rate)
    target = target.contiguous()
    y = local_pixel_shuffling(target, generator, local_rate)
    y = nonlinear_transformation(y, generator, nonlinear_rate)
    if _rand(generator) < paint_rate:
        y = image_in_painting(y, generator) if _rand(generator) < inpaint_rate else image_out_painting(y, generator)
    return y, target

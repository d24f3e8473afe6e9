"""Volume Fusion (VolF), the pretext task of MIS-FM (Wang et al., 2023, "MIS-FM: 3D Medical Image Segmentation
using Foundation Models Pretrained on a Large-Scale Unannotated Dataset").

A foreground sub-volume ``F`` is fused into a background sub-volume ``B`` voxel by voxel,

    ``fused = alpha[label] * F + (1 - alpha[label]) * B``,

with a discrete fusion coefficient per voxel taken from ``ALPHA = (0, 1/K, 2/K, ..., 1)`` (``K + 1`` classes;
MIS-FM and its reference implementation, PyMIC's ``VolumeFusion`` with ``cls_num = 5``, use ``K = 4``:
``alpha in {0, 0.25, 0.5, 0.75, 1}``). Class 0 (``alpha = 0``) is pure background; class ``K`` pure foreground.
A network then segments the class of every voxel (a self-supervised segmentation task).

The label map follows PyMIC's ``VolumeFusion`` transform (the code the MIS-FM repository points to): one random
block size ``(d, h, w)`` per volume, each side drawn uniformly in ``[min, max]``; the volume is tiled by a grid of
``(D // d) x (H // h) x (W // w)`` such blocks starting at a random offset in ``[0, D % d]`` (per axis); a share
``foreground_ratio`` (0.7) of the blocks, chosen at random (``int(n_blocks * ratio)`` of them), are foreground
blocks, each with its own class drawn uniformly in ``{1, ..., K}``; the other blocks and the margins the grid
leaves uncovered are class 0. PyMIC's LUNA pretraining used ``64 x 128 x 128`` sub-volumes with block sides in
``[5, 20] x [8, 32] x [8, 32]``, i.e. about 1/16 to 1/4 of each side; :func:`block_range` scales these fractions to
our patch size (``[2, 8]`` voxels for 32^3 patches, ``[4, 16]`` for 64^3).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ssl_core.errors import ConfigError

NUM_CLASSES = 5
"""``K + 1`` fusion classes of MIS-FM (``K = 4``)."""

BLOCK_FRACTIONS = (1.0 / 16.0, 1.0 / 4.0)
"""Block side range as fractions of the patch side (PyMIC's LUNA setting: ``[8, 32]`` of 128)."""


def fusion_alphas(num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """The discrete fusion coefficients ``alpha_k = k / (num_classes - 1)``, ``k = 0 .. num_classes - 1``.

    Args:
        num_classes: ``K + 1`` classes (at least 2).

    Shapes:
        - output: ``(num_classes,)`` float32, from 0 to 1.
    """
    if num_classes < 2:
        raise ConfigError(f"volume fusion needs at least 2 classes (alpha 0 and 1), got num_classes={num_classes}")
    k = num_classes - 1
    return torch.arange(num_classes, dtype=torch.float32) / k


ALPHA = tuple(fusion_alphas(NUM_CLASSES).tolist())
"""MIS-FM's coefficient set ``(0.0, 0.25, 0.5, 0.75, 1.0)``: class ``k`` has ``alpha = k / 4``."""


def block_range(side: int, fractions: Sequence[float] = BLOCK_FRACTIONS) -> tuple[int, int]:
    """Block side range ``(min, max)`` in voxels for a patch side, from fractions of that side (at least 1 voxel,
    ``max`` at most ``side``).

    Args:
        side: patch side in voxels.
        fractions: ``(low, high)`` fractions of the side, ``0 < low <= high <= 1``.
    """
    low, high = fractions
    if not 0 < low <= high <= 1:
        raise ConfigError(f"block fractions must satisfy 0 < low <= high <= 1, got {tuple(fractions)}")
    lo = max(1, round(side * low))
    hi = min(side, max(lo, round(side * high)))
    return lo, hi


def _randint(low: int, high: int, generator: torch.Generator | None) -> int:
    """A uniform integer in ``[low, high]`` (both included, as Python's ``random.randint``)."""
    return int(torch.randint(low, high + 1, (1,), generator=generator))


def fusion_label(
    shape: Sequence[int],
    generator: torch.Generator | None = None,
    num_classes: int = NUM_CLASSES,
    foreground_ratio: float = 0.7,
    block_min: Sequence[int] | None = None,
    block_max: Sequence[int] | None = None,
) -> torch.Tensor:
    """Draw a fusion class map made of a grid of random blocks (PyMIC's ``VolumeFusion``, see the module doc).

    Args:
        shape: ``(D, H, W)`` of the volume.
        generator: the random source (``None``: torch's global generator).
        num_classes: ``K + 1``; foreground blocks get a class in ``{1, ..., K}``.
        foreground_ratio: share of the grid's blocks that are foreground (``int(n_blocks * ratio)`` blocks).
        block_min, block_max: per-axis block side range in voxels (default: :func:`block_range` of each side).

    Shapes:
        - output: ``(D, H, W)`` int64 in ``[0, num_classes - 1]``.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be (D, H, W) with positive sides, got {shape}")
    if num_classes < 2:
        raise ConfigError(f"volume fusion needs at least 2 classes, got num_classes={num_classes}")
    if not 0 <= foreground_ratio <= 1:
        raise ConfigError(f"foreground_ratio must be in [0, 1], got {foreground_ratio}")
    ranges = [block_range(s) for s in shape]
    bmin = tuple(block_min) if block_min is not None else tuple(r[0] for r in ranges)
    bmax = tuple(block_max) if block_max is not None else tuple(r[1] for r in ranges)
    for lo, hi, s in zip(bmin, bmax, shape, strict=True):
        if not 1 <= lo <= hi <= s:
            raise ConfigError(f"block sides must satisfy 1 <= min <= max <= patch side, got {bmin}, {bmax}, {shape}")
    sizes = [_randint(lo, hi, generator) for lo, hi in zip(bmin, bmax, strict=True)]
    offsets = [_randint(0, s % b, generator) for s, b in zip(shape, sizes, strict=True)]
    counts = [s // b for s, b in zip(shape, sizes, strict=True)]
    n_blocks = counts[0] * counts[1] * counts[2]
    n_fg = int(n_blocks * foreground_ratio)
    order = torch.randperm(n_blocks, generator=generator)
    grid = torch.zeros(n_blocks, dtype=torch.int64)
    classes = torch.randint(1, num_classes, (n_blocks,), generator=generator)
    grid[order[:n_fg]] = classes[:n_fg]
    grid = grid.reshape(counts)
    for axis, b in enumerate(sizes):
        grid = grid.repeat_interleave(b, dim=axis)
    label = torch.zeros(shape, dtype=torch.int64)
    (d0, h0, w0), (dn, hn, wn) = offsets, grid.shape
    label[d0 : d0 + dn, h0 : h0 + hn, w0 : w0 + wn] = grid
    return label


def blend(
    foreground: torch.Tensor, background: torch.Tensor, label: torch.Tensor, num_classes: int = NUM_CLASSES
) -> torch.Tensor:
    """``alpha[label] * foreground + (1 - alpha[label]) * background``, voxel by voxel.

    Args:
        foreground, background: volumes of one shape, ``(C, D, H, W)`` or ``(B, C, D, H, W)``.
        label: fusion classes, the volumes' shape without the channel axis (``(D, H, W)`` or ``(B, D, H, W)``).
        num_classes: ``K + 1`` (``alpha_k = k / K``).
    """
    if foreground.shape != background.shape:
        raise ValueError(f"foreground {tuple(foreground.shape)} and background {tuple(background.shape)} differ")
    expected = foreground.shape[:-4] + foreground.shape[-3:]
    if foreground.ndim not in (4, 5) or label.shape != expected:
        raise ValueError(
            f"volumes must be (C, D, H, W) or (B, C, D, H, W) and the label their shape without C "
            f"({tuple(expected)}), got volumes {tuple(foreground.shape)} and label {tuple(label.shape)}"
        )
    if label.dtype != torch.int64 or (label.numel() and (int(label.min()) < 0 or int(label.max()) >= num_classes)):
        raise ValueError(f"label must be int64 in [0, {num_classes - 1}], got {label.dtype}")
    alphas = fusion_alphas(num_classes).to(device=foreground.device, dtype=foreground.dtype)
    alpha = alphas[label].unsqueeze(-4)
    return alpha * foreground + (1 - alpha) * background


def fuse(
    foreground: torch.Tensor,
    background: torch.Tensor,
    generator: torch.Generator | None = None,
    num_classes: int = NUM_CLASSES,
    foreground_ratio: float = 0.7,
    block_fractions: Sequence[float] = BLOCK_FRACTIONS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fuse random blocks of ``foreground`` into ``background`` (MIS-FM's Volume Fusion).

    Args:
        foreground, background: ``(C, D, H, W)`` volumes of one shape.
        generator: the random source (``None``: torch's global generator).
        num_classes: ``K + 1`` fusion classes (MIS-FM: 5).
        foreground_ratio: share of the grid's blocks that are fused (MIS-FM / PyMIC: 0.7).
        block_fractions: block side range as fractions of each side (see :func:`block_range`).

    Returns:
        ``(fused, label)`` with ``fused == blend(foreground, background, label)``: ``fused`` ``(C, D, H, W)`` of
        the volumes' dtype, ``label`` ``(D, H, W)`` int64 in ``[0, num_classes - 1]``.
    """
    if foreground.ndim != 4:
        raise ValueError(f"fuse takes (C, D, H, W) volumes, got shape {tuple(foreground.shape)}")
    shape = foreground.shape[1:]
    ranges = [block_range(s, block_fractions) for s in shape]
    label = fusion_label(
        shape,
        generator,
        num_classes,
        foreground_ratio,
        block_min=[r[0] for r in ranges],
        block_max=[r[1] for r in ranges],
    )
    return blend(foreground, background, label, num_classes), label


def gamma_correction(x: torch.Tensor, gamma: float) -> torch.Tensor:
    """PyMIC's ``gamma_correction``: map ``x`` to ``[0, 1]`` by its min and max, raise to ``gamma``, map back (a
    constant volume is returned unchanged).

    Shapes:
        - x: any; output: the same.
    """
    lo, hi = x.min(), x.max()
    if not bool(hi > lo):
        return x
    return ((x - lo) / (hi - lo)).pow(gamma) * (hi - lo) + lo


class FusionPretext:
    """Volume Fusion's per-sample part: ``(1, D, H, W)`` patch -> ``{"image", "label", "invert"}``.

    MIS-FM crops two sub-volumes of one scan (PyMIC's ``Crop4VolumeFusion``: random flips, contrast and gamma
    augmentation, and with probability 0.25 both crops inverted ``x -> 1 - x``) and fuses them. Our data set yields
    one random patch per item, so this pretext augments the patch (a flip per axis with probability 0.5 and a gamma
    in ``[0.7, 1.5]``; PyMIC's percentile contrast stretch and random resized crop are not done), draws its fusion
    label map (:func:`fusion_label`) and its inversion flag, and :meth:`collate` fuses each patch of the batch, as
    the foreground, into the previous patch of the batch (``torch.roll`` by one), as the background: two random
    patches of the data, as two random crops of the scans. Inverting the fused volume equals fusing two inverted
    crops (the fusion is affine with weights summing to 1), so the flag is applied after fusing.
    All randomness is drawn here, per sample, from torch's global generator (seeded by the trainer); the collate is
    deterministic.

    Args:
        num_classes: ``K + 1`` fusion classes.
        foreground_ratio: share of fused blocks.
        block_fractions: block side range as fractions of the patch side.
        gamma: gamma range (PyMIC: ``(0.7, 1.5)``; ``(1, 1)`` switches it off).
        flip: flip each axis with probability 0.5.
        invert_prob: probability of inverting the fused volume (PyMIC: 0.25).
    """

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        foreground_ratio: float = 0.7,
        block_fractions: Sequence[float] = BLOCK_FRACTIONS,
        gamma: Sequence[float] = (0.7, 1.5),
        flip: bool = True,
        invert_prob: float = 0.25,
    ) -> None:
        fusion_alphas(num_classes)  # validates
        block_range(16, block_fractions)
        if len(gamma) != 2 or not 0 < gamma[0] <= gamma[1]:
            raise ConfigError(f"gamma must be (low, high) with 0 < low <= high, got {tuple(gamma)}")
        if not 0 <= invert_prob <= 1:
            raise ConfigError(f"invert_prob must be in [0, 1], got {invert_prob}")
        self.num_classes, self.foreground_ratio = num_classes, foreground_ratio
        self.block_fractions, self.gamma = tuple(block_fractions), tuple(gamma)
        self.flip, self.invert_prob = flip, invert_prob

    def __call__(self, patch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Augment one ``(1, D, H, W)`` patch and draw its label map and inversion flag."""
        if not isinstance(patch, torch.Tensor) or patch.ndim != 4:
            raise ValueError(f"volume fusion takes (C, D, H, W) patches, got {getattr(patch, 'shape', type(patch))}")
        x = patch.float()
        if self.flip:
            axes = [a + 1 for a, f in enumerate((torch.rand(3) < 0.5).tolist()) if f]
            if axes:
                x = x.flip(axes)
        lo, hi = self.gamma
        g = float(torch.empty(()).uniform_(lo, hi)) if hi > lo else lo
        if g != 1.0:
            x = gamma_correction(x, g)
        shape = x.shape[1:]
        ranges = [block_range(s, self.block_fractions) for s in shape]
        label = fusion_label(
            shape,
            None,
            self.num_classes,
            self.foreground_ratio,
            block_min=[r[0] for r in ranges],
            block_max=[r[1] for r in ranges],
        )
        invert = torch.rand(()) < self.invert_prob
        return {"image": x.contiguous(), "label": label, "invert": invert}

    def collate(self, items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Fuse patch ``i`` (foreground) into patch ``i - 1`` (background) with label map ``i``.

        Shapes:
            - output: ``{"image": (B, 1, D, H, W) fused, "label": (B, D, H, W) int64}``
        """
        if len(items) < 2:
            raise ConfigError(
                "volume fusion fuses each patch into another patch of its batch: the batch must hold at least 2 "
                f"patches, got {len(items)}; raise train.batch_size"
            )
        fg = torch.stack([it["image"] for it in items])
        label = torch.stack([it["label"] for it in items])
        invert = torch.stack([it["invert"] for it in items]).reshape(-1, 1, 1, 1, 1)
        fused = blend(fg, fg.roll(1, dims=0), label, self.num_classes)
        fused = torch.where(invert, 1 - fused, fused)
        return {"image": fused, "label": label}

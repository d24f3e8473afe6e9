"""The pretext of Tang et al. (2022, "Self-Supervised Pre-Training of Swin Transformers for 3D Medical Image
Analysis"): two rotated, inpainted views of one sub-volume and their clean targets.

Per patch ``(C, D, H, W)`` the pretext draws two views. Each view is the patch rotated by ``k * 90`` degrees,
``k`` in ``{0, 1, 2, 3}``, in the plane of the last two axes (``torch.rot90(x, k, dims=(-2, -1))``; the
reference's ``rot_rand`` rotates the same plane of its ``(C, H, W, Z)`` samples); ``k`` is the rotation label and
the rotated clean patch is the reconstruction target. The input the network sees is the rotated patch with
random boxes replaced (the reference's ``aug_rand`` / ``patch_rand_drop``): boxes are drawn until a random share
``u ~ U(0, max_drop)`` of the voxels is covered, each box starting anywhere with a side between ``tol`` and
``max_block`` of the patch side, and filled with Gaussian noise min-max scaled to ``[0, 1]``. Then, in the batch
(:meth:`SwinPretext.collate`), each view draws a partner index ``j`` uniform over the batch; if ``j`` is another
sample, a second set of boxes is copied from the partner's (rotated, inpainted) view at the same position, as
``aug_rand`` does with ``x_rep``.

Randomness comes from torch's global generator (the trainer seeds it per sample).
"""

from __future__ import annotations

import math

import torch

from ssl_core.errors import ConfigError

NUM_ROTATIONS = 4


def rotate(volume: torch.Tensor, k: int) -> torch.Tensor:
    """Rotate by ``k * 90`` degrees in the plane of the last two axes.

    Shapes:
        - volume: ``(..., H, W)``; output: ``(..., W, H)`` (the same for cubic patches)
    """
    return torch.rot90(volume, int(k), dims=(-2, -1))


def random_boxes(
    shape: tuple[int, int, int],
    max_drop: float = 0.3,
    max_block: float = 0.25,
    tol: float = 0.05,
    generator: torch.Generator | None = None,
) -> list[tuple[slice, slice, slice]]:
    """Boxes covering (with overlaps counted twice, as the reference counts them) a random share of the voxels.

    The share is ``u * D * H * W`` with ``u ~ U(0, max_drop)``; every box starts at a uniform position in
    ``[0, side - tol * side)`` and has a side uniform in ``[tol * side, max_block * side)`` (clipped at the border),
    as ``patch_rand_drop`` of Tang et al.

    Args:
        shape: the patch's ``(D, H, W)``.
        max_drop: largest share of voxels to cover.
        max_block: largest box side as a share of the patch side.
        tol: smallest box side as a share of the patch side (at least one voxel).
        generator: random generator (torch's global one by default).

    Returns:
        A list of ``(slice_d, slice_h, slice_w)``.
    """
    if not 0 <= max_drop <= 1:
        raise ConfigError(f"max_drop must be in [0, 1], got {max_drop}")
    if not 0 < tol < max_block <= 1:
        raise ConfigError(f"need 0 < tol < max_block <= 1 (box side shares), got tol={tol}, max_block={max_block}")
    lows = [max(1, int(tol * s)) for s in shape]
    highs = [max(lo + 1, int(max_block * s)) for lo, s in zip(lows, shape, strict=True)]
    target = float(torch.rand((), generator=generator)) * max_drop * math.prod(shape)
    boxes, covered = [], 0
    while covered < target:
        box = []
        for s, lo, hi in zip(shape, lows, highs, strict=True):
            start = int(torch.randint(0, max(1, s - lo), (), generator=generator))
            stop = min(start + int(torch.randint(lo, hi, (), generator=generator)), s)
            box.append(slice(start, stop))
        boxes.append(tuple(box))
        covered += math.prod(b.stop - b.start for b in box)
    return boxes


def noise_fill(volume: torch.Tensor, boxes: list[tuple[slice, slice, slice]]) -> torch.Tensor:
    """A copy of ``volume`` whose boxes hold Gaussian noise min-max scaled to ``[0, 1]`` (one draw per box).

    Shapes:
        - volume: ``(C, D, H, W)``; output: the same
    """
    out = volume.clone()
    for box in boxes:
        region = out[(slice(None), *box)]
        noise = torch.randn(region.shape, dtype=out.dtype)
        span = noise.max() - noise.min()
        out[(slice(None), *box)] = (noise - noise.min()) / span if span > 0 else torch.zeros_like(noise)
    return out


def box_mask(shape: tuple[int, ...], boxes: list[tuple[slice, slice, slice]]) -> torch.Tensor:
    """Boolean mask of the voxels inside any box.

    Shapes:
        - shape: ``(C, D, H, W)``; output: bool of that shape
    """
    mask = torch.zeros(shape, dtype=torch.bool)
    for box in boxes:
        mask[(slice(None), *box)] = True
    return mask


class SwinPretext:
    """Tang et al.'s views of one patch: ``(C, D, H, W)`` -> a dict of two views.

    Returns ``{"views": (2, C, D, H, W) rotated and inpainted, "targets": (2, C, D, H, W) rotated clean,
    "rotations": (2,) long in [0, 4), "mask": (2, C, D, H, W) bool, True inside the inpainted boxes (elsewhere
    view == target)}``.
    Use :meth:`collate` to batch them (it adds the reference's cross-sample inpainting).

    Args:
        max_drop: largest share of voxels covered by one set of boxes (reference: 0.3).
        max_block: largest box side as a share of the patch side (reference: 0.25).
        tol: smallest box side share (reference: 0.05).
        cross_sample: also paste boxes from another sample's view in :meth:`collate` (reference: yes).
    """

    def __init__(self, max_drop: float = 0.3, max_block: float = 0.25, tol: float = 0.05, cross_sample: bool = True):
        random_boxes((8, 8, 8), max_drop, max_block, tol, torch.Generator().manual_seed(0))  # validates
        self.max_drop, self.max_block, self.tol, self.cross_sample = max_drop, max_block, tol, cross_sample

    def _boxes(self, shape: tuple[int, int, int]) -> list[tuple[slice, slice, slice]]:
        return random_boxes(shape, self.max_drop, self.max_block, self.tol)

    def __call__(self, sample: torch.Tensor) -> dict[str, torch.Tensor]:
        """Draw the two views of one patch."""
        if not isinstance(sample, torch.Tensor) or sample.ndim != 4:
            raise ValueError(
                f"the Swin pretext takes one (C, D, H, W) patch, got {getattr(sample, 'shape', type(sample))}"
            )
        if sample.shape[-1] != sample.shape[-2]:
            raise ValueError(
                f"rotations in the (H, W) plane need H == W to keep the patch shape, got {tuple(sample.shape)}; "
                "use a cubic data.patch_size"
            )
        sample = sample.float()
        views, targets, rots, masks = [], [], [], []
        for _ in range(2):
            k = int(torch.randint(0, NUM_ROTATIONS, ()))
            target = rotate(sample, k)
            boxes = self._boxes(tuple(target.shape[1:]))
            views.append(noise_fill(target, boxes))
            masks.append(box_mask(tuple(target.shape), boxes))
            targets.append(target)
            rots.append(k)
        return {
            "views": torch.stack(views),
            "targets": torch.stack(targets),
            "rotations": torch.tensor(rots, dtype=torch.long),
            "mask": torch.stack(masks),
        }

    def collate(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Stack items and, per view, paste boxes from a random partner's view of the same index (``aug_rand``).

        Shapes:
            - output: ``views``, ``targets``, ``mask``: ``(B, 2, C, D, H, W)``; ``rotations``: ``(B, 2)``
        """
        batch = {key: torch.stack([item[key] for item in items]) for key in items[0]}
        if not self.cross_sample or len(items) < 2:
            return batch
        views, mask = batch["views"], batch["mask"]
        source = views.clone()  # partners' views as drawn per sample (the reference may read an already pasted one)
        n = views.shape[0]
        for v in range(views.shape[1]):
            for i in range(n):
                j = int(torch.randint(0, n, ()))
                if j == i:
                    continue
                for box in self._boxes(tuple(views.shape[3:])):
                    index = (i, v, slice(None), *box)
                    views[index] = source[(j, v, slice(None), *box)]
                    mask[index] = True
        return batch

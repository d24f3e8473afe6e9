"""Masks over patch tokens: random (MAE), blockwise (BEiT), tube (VideoMAE) and disjoint multi-view (DMJD)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ssl_core.errors import ConfigError


@dataclass(frozen=True)
class MaskInfo:
    """A mask with the same number of masked tokens in every sample, and MAE's index maps to drop them
    (He et al., 2022).

    Attributes:
        mask: True on masked (removed) tokens.
        ids_keep: indices of the kept tokens, in increasing order for masks built from a pattern and in
            shuffle order for :func:`random_mask` (as MAE); ``x.gather(1, ids_keep[..., None].expand(-1, -1, D))``
            gives the visible tokens.
        ids_restore: the permutation that puts ``cat([kept, masked])`` back in token order (MAE's decoder
            un-shuffle): ``ids_restore = argsort(cat([ids_keep, ids_masked]))``.

    Shapes:
        - mask: ``(B, L)`` bool
        - ids_keep: ``(B, L_keep)`` long
        - ids_restore: ``(B, L)`` long
    """

    mask: torch.Tensor
    ids_keep: torch.Tensor
    ids_restore: torch.Tensor


def _check_ratio(mask_ratio: float) -> None:
    if not 0.0 <= mask_ratio < 1.0:
        raise ConfigError(f"mask_ratio must lie in [0, 1), got {mask_ratio}")


def _info_from_mask(mask: torch.Tensor) -> MaskInfo:
    """Index maps of a mask whose rows hold the same number of masked tokens."""
    counts = mask.sum(dim=1)
    if (counts != counts[0]).any():
        raise ValueError("every sample must mask the same number of tokens to build ids_keep")
    ids_shuffle = torch.argsort(mask.to(torch.int8), dim=1, stable=True)  # kept tokens first, in order
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    return MaskInfo(mask, ids_shuffle[:, : mask.shape[1] - int(counts[0])], ids_restore)


def random_mask(
    batch_size: int,
    length: int,
    mask_ratio: float = 0.75,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> MaskInfo:
    """Uniform random masking of a fixed share of tokens per sample (MAE; He et al., 2022, Sec. 3).

    Each sample keeps ``int(L * (1 - mask_ratio))`` tokens chosen uniformly without replacement, by sorting
    random noise as MAE's ``random_masking``: small noise is kept, large noise removed.

    Args:
        batch_size: ``B``.
        length: number of tokens ``L``.
        mask_ratio: share of masked tokens (MAE: 0.75).
        generator: source of randomness (reproducible runs).
        device: device of the returned tensors.

    Shapes:
        - output: :class:`MaskInfo` with ``mask (B, L)``, ``ids_keep (B, L_keep)``, ``ids_restore (B, L)``
    """
    _check_ratio(mask_ratio)
    len_keep = int(length * (1 - mask_ratio))
    noise = torch.rand(batch_size, length, generator=generator).to(device)
    ids_shuffle = torch.argsort(noise, dim=1)  # ascend: small is keep, large is remove
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    mask = torch.ones(batch_size, length, dtype=torch.bool, device=noise.device)
    mask[:, :len_keep] = False
    mask = torch.gather(mask, 1, ids_restore)  # un-shuffle to token order
    return MaskInfo(mask, ids_shuffle[:, :len_keep], ids_restore)


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * torch.rand((), generator=generator).item()


def _randint(low: int, high: int, generator: torch.Generator | None) -> int:
    """An integer in ``[low, high]``, both ends included (as ``random.randint``)."""
    return int(torch.randint(low, high + 1, (), generator=generator))


def block_mask(
    batch_size: int,
    height: int,
    width: int,
    mask_ratio: float = 0.4,
    min_num_patches: int = 16,
    max_num_patches: int | None = None,
    min_aspect: float = 0.3,
    max_aspect: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Blockwise masking of a patch grid (BEiT; Bao et al., 2022, Algorithm 1).

    Rectangular blocks are added until ``int(mask_ratio * H * W)`` patches are masked: each block has an
    area drawn uniformly in ``[min_num_patches, remaining]`` and a log-uniform aspect ratio in
    ``[min_aspect, 1 / min_aspect]``; a block is kept when it adds between 1 and ``remaining`` new patches,
    so the count never exceeds the target. As BEiT's ``MaskingGenerator``, the loop stops when ten draws in
    a row add nothing, so a crowded grid can end a few patches short. Masked counts therefore vary per
    sample, and the mask suits methods that replace masked tokens with a mask token (BEiT, SimMIM, iBOT).

    Args:
        batch_size: ``B``.
        height: patch rows ``H``.
        width: patch columns ``W``.
        mask_ratio: target share of masked patches (BEiT: 75 of 196, about 0.4).
        min_num_patches: smallest block area (BEiT: 16).
        max_num_patches: largest block area (no limit by default).
        min_aspect: smallest aspect ratio (0.3); the largest is ``max_aspect`` or ``1 / min_aspect``.
        generator: source of randomness.

    Shapes:
        - output: ``(B, H, W)`` bool, True on masked patches
    """
    _check_ratio(mask_ratio)
    if not 0 < min_aspect <= (max_aspect or 1 / min_aspect):
        raise ConfigError(f"aspect ratios must satisfy 0 < min_aspect <= max_aspect, got {min_aspect}, {max_aspect}")
    target = int(mask_ratio * height * width)
    max_block = target if max_num_patches is None else max_num_patches
    log_aspect = (math.log(min_aspect), math.log(max_aspect or 1 / min_aspect))
    masks = torch.zeros(batch_size, height, width, dtype=torch.bool)
    for mask in masks:
        count = 0
        while count < target:
            budget = min(target - count, max_block)
            delta = 0
            for _attempt in range(10):
                area = _uniform(min_num_patches, budget, generator)
                aspect = math.exp(_uniform(*log_aspect, generator))
                h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
                if w < width and h < height:
                    top, left = _randint(0, height - h, generator), _randint(0, width - w, generator)
                    block = mask[top : top + h, left : left + w]
                    new = h * w - int(block.sum())
                    if 0 < new <= budget:
                        block.fill_(True)
                        delta = new
                if delta > 0:
                    break
            if delta == 0:
                break
            count += delta
    return masks


def tube_mask(
    batch_size: int,
    frames: int,
    patches_per_frame: int,
    mask_ratio: float = 0.9,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> MaskInfo:
    """Tube masking of video tokens: one random spatial mask repeated over time (VideoMAE; Tong et al., 2022).

    Each sample masks ``int(mask_ratio * N)`` of the ``N`` patch positions of a frame, and the same
    positions in every one of its ``T`` temporal slices, so a masked cube cannot be recovered from a
    neighbouring frame. Tokens are ordered time-major (``t * N + n``), as VideoMAE's patch embedding.

    Args:
        batch_size: ``B``.
        frames: temporal token slices ``T`` (frames divided by the tubelet size).
        patches_per_frame: spatial tokens ``N`` per slice.
        mask_ratio: share of masked tokens (VideoMAE: 0.9).
        generator: source of randomness.
        device: device of the returned tensors.

    Shapes:
        - output: :class:`MaskInfo` over ``L = T * N`` tokens
    """
    _check_ratio(mask_ratio)
    num_masked = int(mask_ratio * patches_per_frame)
    noise = torch.rand(batch_size, patches_per_frame, generator=generator)
    ranks = torch.argsort(torch.argsort(noise, dim=1), dim=1)
    frame_mask = ranks < num_masked  # (B, N): the num_masked positions with the smallest noise
    mask = frame_mask[:, None, :].expand(batch_size, frames, patches_per_frame).reshape(batch_size, -1)
    return _info_from_mask(mask.to(device))


def disjoint_masks(
    n_views: int,
    batch_size: int,
    length: int,
    mask_ratio: float = 0.75,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> list[MaskInfo]:
    """Several random masks per sample whose masked sets overlap as little as possible (DMJD; Ma et al., 2023).

    Disjoint masking samples the views one after another: each masks ``L - int(L * (1 - mask_ratio))``
    tokens (MAE's count, so every view keeps the masking rate), taking first, in random order, the tokens
    that earlier views masked least often. Hence:

    - while ``n_views * mask_ratio <= 1`` the masked sets are pairwise disjoint;
    - once they must overlap, every token is masked in at least ``floor(n_views * num_masked / L)`` views
      and no token more than once above that, so the union of masked tokens -- the tokens reconstructed --
      covers the whole image. With two views at ratio 0.75 this is DMJD's ``random_masking`` with
      ``pred_ratio=1``: the second view masks every token visible in the first, and the visible sets are
      disjoint.

    Args:
        n_views: number of masked views ``V``.
        batch_size: ``B``.
        length: number of tokens ``L``.
        mask_ratio: share of masked tokens in each view.
        generator: source of randomness.
        device: device of the returned tensors.

    Shapes:
        - output: ``V`` :class:`MaskInfo` over the same ``(B, L)`` tokens
    """
    _check_ratio(mask_ratio)
    if n_views < 1:
        raise ConfigError(f"n_views must be positive, got {n_views}")
    len_keep = int(length * (1 - mask_ratio))
    times_masked = torch.zeros(batch_size, length)
    views = []
    for _ in range(n_views):
        # tokens masked most often are kept first; ties (and the order inside a level) broken at random
        noise = torch.rand(batch_size, length, generator=generator)
        ids_shuffle = torch.argsort(times_masked + noise, dim=1, descending=True)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        mask = torch.ones(batch_size, length, dtype=torch.bool)
        mask[:, :len_keep] = False
        mask = torch.gather(mask, 1, ids_restore)
        times_masked += mask
        views.append(MaskInfo(mask.to(device), ids_shuffle[:, :len_keep].to(device), ids_restore.to(device)))
    return views

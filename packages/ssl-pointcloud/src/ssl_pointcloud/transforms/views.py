"""Two augmented views of one cloud with their known point correspondence (PointContrast, registration).

Each view is made independently from the same source cloud ``P``:

1. optionally a partial view (:func:`~ssl_pointcloud.transforms.augment.crop`, keep share drawn from
   ``keep``), always resampled to ``num_points`` points: ``idx`` says which source point each view point is;
2. a similarity transform ``x -> A x + t`` with ``A = R diag(s)``: ``s`` per axis log-uniform in ``scale``
   (isotropic unless ``anisotropic``), ``R`` a random rotation (``rotation``: ``"so3"``, ``"z"`` or ``"none"``),
   ``t`` uniform in ``[-shift, shift]^3``;
3. clipped Gaussian jitter (``jitter_sigma``, ``jitter_clip``), the only part not in the transform.

So ``view[i] = A @ P[idx[i]] + t + noise_i`` exactly (``|noise_i| <= jitter_clip`` per coordinate), and view-a
point ``i`` and view-b point ``j`` are the same surface point exactly when ``idx_a[i] == idx_b[j]``
(:func:`correspondences` lists those pairs). The transform from view a to view b (without the noise) is
``T_b @ inverse(T_a)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ssl_core.errors import ConfigError
from ssl_pointcloud.transforms.augment import ROTATIONS, _batch, crop, random_rotation, random_rotation_z


class PairedViews(NamedTuple):
    """Two views of the same clouds (see the module docstring).

    Args:
        view_a, view_b: the views.
        idx_a, idx_b: the source point of every view point (indices into the input cloud).
        transform_a, transform_b: the 4x4 similarity transforms ``[[A, t], [0, 1]]`` applied to the source points
            (before the jitter).

    Shapes:
        - views: ``(M, 3)`` / ``(B, M, 3)``; idx: ``(M,)`` / ``(B, M)`` int64; transforms: ``(4, 4)`` / ``(B, 4, 4)``
    """

    view_a: torch.Tensor
    view_b: torch.Tensor
    idx_a: torch.Tensor
    idx_b: torch.Tensor
    transform_a: torch.Tensor
    transform_b: torch.Tensor


def random_similarity(
    n: int,
    generator: torch.Generator | None = None,
    rotation: str = "so3",
    scale: tuple[float, float] = (0.8, 1.25),
    anisotropic: bool = False,
    shift: float = 0.0,
    dtype: torch.dtype = torch.float32,
    device=None,
) -> torch.Tensor:
    """``n`` random transforms ``[[R diag(s), t], [0, 1]]`` (see the module docstring).

    Shapes:
        - output: ``(n, 4, 4)``
    """
    if rotation not in ROTATIONS:
        raise ConfigError(f"rotation must be one of {', '.join(ROTATIONS)}, got {rotation!r}")
    low, high = scale
    if not 0 < low <= high:
        raise ConfigError(f"scale needs 0 < low <= high, got {scale}")
    if rotation == "so3":
        r = random_rotation(n, generator, torch.float64)
    elif rotation == "z":
        r = random_rotation_z(n, generator, dtype=torch.float64)
    else:
        r = torch.eye(3, dtype=torch.float64).expand(n, 3, 3)
    u = torch.rand(n, 3 if anisotropic else 1, generator=generator, dtype=torch.float64)
    s = torch.exp(math.log(low) + u * (math.log(high) - math.log(low))).expand(n, 3)
    t = (torch.rand(n, 3, generator=generator, dtype=torch.float64) * 2 - 1) * shift
    out = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    out[:, :3, :3] = r * s[:, None, :]  # R @ diag(s)
    out[:, :3, 3] = t
    return out.to(device=device, dtype=dtype)


def apply_transform(points: torch.Tensor, transform: torch.Tensor) -> torch.Tensor:
    """``x -> A x + t`` for a 4x4 ``transform = [[A, t], [0, 1]]`` (one per cloud of a batch).

    Shapes:
        - points: ``(N, 3)`` / ``(B, N, 3)``; transform: ``(4, 4)`` / ``(B, 4, 4)``
    """
    return points @ transform[..., :3, :3].transpose(-1, -2) + transform[..., None, :3, 3]


def paired_views(
    points: torch.Tensor,
    generator: torch.Generator | None = None,
    num_points: int | None = None,
    crop_mode: str | None = "plane",
    keep: tuple[float, float] = (0.6, 0.9),
    rotation: str = "so3",
    scale: tuple[float, float] = (0.8, 1.25),
    anisotropic: bool = False,
    shift: float = 0.0,
    jitter_sigma: float = 0.01,
    jitter_clip: float = 0.05,
) -> PairedViews:
    """Two augmented views of each cloud with their point correspondence (see the module docstring).

    Args:
        points: the source clouds.
        generator: the draws (CPU).
        num_points: points per view (default: the source's ``N``).
        crop_mode: ``"plane"``, ``"ball"`` (partial views keeping a share in ``keep``) or ``None`` (the whole
            cloud, resampled: a random permutation when ``num_points == N``).
        keep: range of the share of the source points a partial view keeps, drawn per view (one share for all
            the clouds of a batch; the crop planes / balls are drawn per cloud). Two views keeping
            shares ``k_a`` and ``k_b`` share at least ``k_a + k_b - 1`` of the source points.
        rotation, scale, anisotropic, shift: the similarity transform (:func:`random_similarity`).
        jitter_sigma, jitter_clip: the noise added after the transform.

    Shapes:
        - points: ``(N, 3)`` or ``(B, N, 3)``; output: see :class:`PairedViews`
    """
    x, single = _batch(points)
    b, n, _ = x.shape
    m = num_points or n
    views, idxs, transforms = [], [], []
    for _ in range(2):
        if crop_mode is None:
            idx = torch.stack(
                [
                    torch.randperm(n, generator=generator)[:m]
                    if m <= n
                    else torch.randint(0, n, (m,), generator=generator)
                    for _ in range(b)
                ]
            ).to(x.device)
        else:
            share = keep[0] + (keep[1] - keep[0]) * float(torch.rand((), generator=generator))
            _, idx = crop(x, share, crop_mode, m, generator)
        src = torch.gather(x, 1, idx[..., None].expand(-1, -1, 3))
        tr = random_similarity(b, generator, rotation, scale, anisotropic, shift, x.dtype, x.device)
        noise = torch.randn(src.shape, generator=generator, dtype=torch.float64).to(x.device, x.dtype)
        views.append(apply_transform(src, tr) + (noise * jitter_sigma).clamp(-jitter_clip, jitter_clip))
        idxs.append(idx)
        transforms.append(tr)
    out = PairedViews(views[0], views[1], idxs[0], idxs[1], transforms[0], transforms[1])
    return PairedViews(*(t[0] for t in out)) if single else out


def correspondences(idx_a: torch.Tensor, idx_b: torch.Tensor) -> torch.Tensor:
    """The matched positions of two views of one cloud: every pair ``(i, j)`` with ``idx_a[i] == idx_b[j]`` (the
    same source point), sorted by ``i`` then ``j``. Repeated source points (resampling repeats) give every
    combination.

    Shapes:
        - idx_a: ``(M_a,)``; idx_b: ``(M_b,)``; output: ``(K, 2)`` int64
    """
    if idx_a.ndim != 1 or idx_b.ndim != 1:
        raise ValueError(
            f"correspondences takes the indices of one cloud, got {tuple(idx_a.shape)}, {tuple(idx_b.shape)}"
        )
    order = idx_b.argsort(stable=True)
    sorted_b = idx_b[order]
    lo = torch.searchsorted(sorted_b, idx_a, right=False)
    hi = torch.searchsorted(sorted_b, idx_a, right=True)
    counts = hi - lo
    i = torch.repeat_interleave(torch.arange(len(idx_a), device=idx_a.device), counts)
    offsets = torch.arange(int(counts.sum()), device=idx_a.device) - torch.repeat_interleave(
        torch.cumsum(counts, 0) - counts, counts
    )
    j = order[torch.repeat_interleave(lo, counts) + offsets]
    pairs = torch.stack([i, j], 1)
    if len(pairs):
        pairs = pairs[torch.argsort(pairs[:, 0] * (len(idx_b) + 1) + pairs[:, 1])]
    return pairs

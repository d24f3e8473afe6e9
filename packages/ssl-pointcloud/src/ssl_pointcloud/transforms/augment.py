"""Batched random augmentations of point clouds (torch), for the methods' pretexts.

Every function takes one cloud ``(N, 3)`` or a batch ``(B, N, 3)`` (each cloud of a batch gets its own draw)
and an optional ``torch.Generator`` (CPU; the draws are made on the CPU and moved to the points' device, so a
seeded generator gives the same augmentation on every device). Functions that move or select points also
return what they drew (the rotation, the scale, the kept indices ...), so a method can undo or track it.
"""

from __future__ import annotations

import math

import torch

from ssl_core.errors import ConfigError

ROTATIONS = ("so3", "z", "none")


def _batch(points: torch.Tensor) -> tuple[torch.Tensor, bool]:
    points = torch.as_tensor(points)
    if points.ndim == 2 and points.shape[1] == 3:
        return points[None], True
    if points.ndim == 3 and points.shape[2] == 3:
        return points, False
    raise ValueError(f"points must be a cloud (N, 3) or a batch (B, N, 3), got shape {tuple(points.shape)}")


def _rand(shape, generator, like: torch.Tensor) -> torch.Tensor:
    return torch.rand(shape, generator=generator, dtype=torch.float64).to(like.device, like.dtype)


def _randn(shape, generator, like: torch.Tensor) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=torch.float64).to(like.device, like.dtype)


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices of unit quaternions ``(w, x, y, z)``.

    Shapes:
        - q: ``(..., 4)``; output: ``(..., 3, 3)``
    """
    w, x, y, z = q.unbind(-1)
    rows = (
        (1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)),
        (2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)),
        (2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)),
    )
    return torch.stack([torch.stack(r, -1) for r in rows], -2)


def random_rotation(
    n: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32, device=None
) -> torch.Tensor:
    """``n`` rotation matrices drawn uniformly (Haar measure) from SO(3): normalised Gaussian quaternions
    (Shoemake, 1992).

    Shapes:
        - output: ``(n, 3, 3)``, orthonormal, determinant +1
    """
    q = torch.randn(n, 4, generator=generator, dtype=torch.float64)
    return quaternion_to_matrix(q / q.norm(dim=1, keepdim=True)).to(device=device, dtype=dtype)


def random_rotation_z(
    n: int,
    generator: torch.Generator | None = None,
    max_angle: float = math.pi,
    dtype: torch.dtype = torch.float32,
    device=None,
) -> torch.Tensor:
    """``n`` rotations about the up axis ``z`` by angles drawn uniformly from ``[-max_angle, max_angle]``.

    Shapes:
        - output: ``(n, 3, 3)``
    """
    a = (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * max_angle
    c, s, o, i = a.cos(), a.sin(), torch.zeros_like(a), torch.ones_like(a)
    r = torch.stack([torch.stack([c, -s, o], -1), torch.stack([s, c, o], -1), torch.stack([o, o, i], -1)], -2)
    return r.to(device=device, dtype=dtype)


def rotate(
    points: torch.Tensor, kind: str = "so3", generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate each cloud about the origin: ``x -> R x``, with ``R`` uniform on SO(3) (``"so3"``), about ``z``
    (``"z"``), or the identity (``"none"``).

    Returns:
        ``(rotated points, R)``.

    Shapes:
        - points: ``(N, 3)`` or ``(B, N, 3)``; output: the same and ``R`` ``(3, 3)`` or ``(B, 3, 3)``
    """
    if kind not in ROTATIONS:
        raise ConfigError(f"rotation must be one of {', '.join(ROTATIONS)}, got {kind!r}")
    x, single = _batch(points)
    b = x.shape[0]
    if kind == "so3":
        r = random_rotation(b, generator, x.dtype, x.device)
    elif kind == "z":
        r = random_rotation_z(b, generator, dtype=x.dtype, device=x.device)
    else:
        r = torch.eye(3, dtype=x.dtype, device=x.device).expand(b, 3, 3).clone()
    out = x @ r.transpose(1, 2)
    return (out[0], r[0]) if single else (out, r)


def scale(
    points: torch.Tensor,
    low: float = 2 / 3,
    high: float = 3 / 2,
    anisotropic: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale each cloud about the origin by factors drawn log-uniformly from ``[low, high]``: one per axis
    (``anisotropic``) or one per cloud.

    Returns:
        ``(scaled points, factors)`` with factors ``(3,)`` / ``(B, 3)`` (equal entries when isotropic).
    """
    if not 0 < low <= high:
        raise ConfigError(f"scale needs 0 < low <= high, got {low}, {high}")
    x, single = _batch(points)
    u = _rand((x.shape[0], 3 if anisotropic else 1), generator, x)
    s = torch.exp(math.log(low) + u * (math.log(high) - math.log(low))).expand(x.shape[0], 3)
    out = x * s[:, None]
    return (out[0], s[0]) if single else (out, s)


def translate(
    points: torch.Tensor, max_shift: float = 0.2, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shift each cloud by a vector with coordinates uniform in ``[-max_shift, max_shift]``.

    Returns:
        ``(shifted points, shifts)``, shifts ``(3,)`` / ``(B, 3)``.
    """
    x, single = _batch(points)
    t = (_rand((x.shape[0], 3), generator, x) * 2 - 1) * max_shift
    out = x + t[:, None]
    return (out[0], t[0]) if single else (out, t)


def jitter(
    points: torch.Tensor, sigma: float = 0.01, clip: float = 0.05, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Add independent Gaussian noise of std ``sigma`` to every coordinate, clipped to ``[-clip, clip]``
    (PointNet's jitter)."""
    x, single = _batch(points)
    out = x + (_randn(x.shape, generator, x) * sigma).clamp(-clip, clip)
    return out[0] if single else out


def dropout(
    points: torch.Tensor, max_ratio: float = 0.875, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random point dropout of PointNet++: each cloud draws a ratio ``r ~ U(0, max_ratio)`` and each point is
    dropped with probability ``r``; a dropped point is replaced by the cloud's first point (so the shape stays
    ``(N, 3)`` and the cloud loses density, not extent).

    Returns:
        ``(points, kept)`` with ``kept`` the boolean mask of the points left as they were (point 0 always is).
    """
    x, single = _batch(points)
    ratio = _rand((x.shape[0], 1), generator, x) * max_ratio
    drop = _rand(x.shape[:2], generator, x) < ratio
    drop[:, 0] = False
    out = torch.where(drop[..., None], x[:, :1].expand_as(x), x)
    return (out[0], ~drop[0]) if single else (out, ~drop)


def resample_indices(available: int, num_points: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``num_points`` indices below ``available``: a random subset without replacement when ``available >=
    num_points``, else every index once plus random repeats, in random order.

    Shapes:
        - output: ``(num_points,)`` int64
    """
    if available < 1:
        raise ValueError("cannot resample from an empty set of points")
    if available >= num_points:
        return torch.randperm(available, generator=generator)[:num_points]
    extra = torch.randint(0, available, (num_points - available,), generator=generator)
    idx = torch.cat([torch.arange(available), extra])
    return idx[torch.randperm(num_points, generator=generator)]


def resample(
    points: torch.Tensor, num_points: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exactly ``num_points`` points of each cloud (:func:`resample_indices`).

    Returns:
        ``(points, idx)``, ``idx`` ``(num_points,)`` / ``(B, num_points)`` into the input clouds.
    """
    x, single = _batch(points)
    idx = torch.stack([resample_indices(x.shape[1], num_points, generator) for _ in range(x.shape[0])]).to(x.device)
    out = torch.gather(x, 1, idx[..., None].expand(-1, -1, 3))
    return (out[0], idx[0]) if single else (out, idx)


def _crop_indices(x: torch.Tensor, keep: int, mode: str, generator) -> torch.Tensor:
    """The ``keep`` points of each cloud farthest along a random direction (``plane``) or nearest a random point
    of the cloud (``ball``); ``(B, keep)`` indices."""
    b, n, _ = x.shape
    if mode == "plane":
        d = _randn((b, 3), generator, x)
        score = (x * (d / d.norm(dim=1, keepdim=True))[:, None]).sum(-1)  # (B, N), larger is kept
    elif mode == "ball":
        centre = torch.randint(0, n, (b,), generator=generator).to(x.device)
        score = -(x - x[torch.arange(b, device=x.device), centre][:, None]).square().sum(-1)
    else:
        raise ConfigError(f"crop must be 'plane' or 'ball', got {mode!r}")
    return score.topk(keep, dim=1).indices


def crop(
    points: torch.Tensor,
    keep: float = 0.7,
    mode: str = "plane",
    num_points: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random partial view of each cloud: the ``round(keep * N)`` points on one side of a plane of random
    normal (``"plane"``: those farthest along the normal) or nearest a random point of the cloud
    (``"ball"``), resampled to ``num_points`` (default ``N``; :func:`resample_indices`).

    Returns:
        ``(view, idx)``: ``view = points[idx]``, ``idx`` ``(num_points,)`` / ``(B, num_points)`` into the input.
    """
    if not 0 < keep <= 1:
        raise ConfigError(f"crop keep must lie in (0, 1], got {keep}")
    x, single = _batch(points)
    num_points = num_points or x.shape[1]
    k = max(1, round(keep * x.shape[1]))
    inside = _crop_indices(x, k, mode, generator)  # (B, k)
    pick = torch.stack([resample_indices(k, num_points, generator) for _ in range(x.shape[0])]).to(x.device)
    idx = torch.gather(inside, 1, pick)
    out = torch.gather(x, 1, idx[..., None].expand(-1, -1, 3))
    return (out[0], idx[0]) if single else (out, idx)


def normalize(points: torch.Tensor) -> torch.Tensor:
    """Centre each cloud on its mean and scale it into the unit sphere (its farthest point at distance 1; a
    cloud of zero extent is only centred)."""
    x, single = _batch(points)
    x = x - x.mean(1, keepdim=True)
    out = x / x.norm(dim=-1).amax(1).clamp_min(1e-12)[:, None, None]
    return out[0] if single else out

"""Scenes of objects: a deterministic generator of small multi-object images with dense labels, a second
viewpoint with known pixel correspondence, an "after" image with one object removed, and a clean / styled switch.

A scene places 2-4 Fashion-MNIST objects (scaled to 0.6-1.0 of their 28 px) on a square canvas with limited
overlap (later objects are drawn on top). Everything is a pure function of ``(seed, split, index)``: each scene
draws its randomness from its own :class:`torch.Generator`, never from the global one, so item ``i`` is the same
in every DataLoader worker and every run. The same generator serves segmentation probes (``labels``), cross-view
pairs (``view2`` / ``homography``, e.g. CroCo), change detection (``after`` / ``removed``) and domain adaptation
(``style="clean"`` as the source domain, ``"styled"`` as the target, e.g. MFM).

Coordinates: pixel ``(row r, column c)`` has the coordinates ``(x = c, y = r)``; its centre lies at that point,
so the canvas spans ``[-0.5, S - 0.5]`` in both ``x`` and ``y``.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ssl_core.data import DataBundle, LabeledSplit
from ssl_core.errors import ConfigError, DataError

if TYPE_CHECKING:
    from ssl_vision.data.images import VisionDataConfig

NUM_SCENE_CLASSES = 11  # background + 10 object classes
IGNORE = 255  # labels2 where view 2 sees outside view 1
STYLES = ("clean", "styled")
_SPLITS = {"train": 0, "test": 1}
_STYLE_STREAM = 0x5EED  # the style (texture, noise) of a scene draws from its own generator: see render_scene
_SEGMENTATION_STREAM = 7_919  # segmentation_split's scenes: seeds apart from the pretraining scenes


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are drawn (frozen, hence hashable: it keys the in-memory caches).

    Args:
        canvas: side ``S`` of the square canvas in pixels.
        min_objects, max_objects: number of objects placed (uniform in the range; an object that finds no
            place within ``placement_tries`` is left out, the first always fits).
        min_scale, max_scale: an object is resized to ``round(28 * scale)`` pixels, scale uniform in the range.
        max_overlap: at most this share of a new object's mask may cover earlier objects, and every object
            keeps at least ``1 - max_overlap`` of its mask visible.
        placement_tries: random positions tried per object.
        mask_threshold: an object's pixels are those above this intensity (of 255) after resizing.
        homography_jitter: view 2's homography moves each canvas corner by up to this share of the canvas,
            independently in x and y.
        brightness, contrast: view 2's photometric change, ``clamp(c * x + b, 0, 1)`` with ``c`` uniform in
            ``[1 - contrast, 1 + contrast]`` and ``b`` in ``[-brightness, brightness]`` (intensities in [0, 1]).
        objects: a folder (or ``.npy`` arrays) of labelled object images to use instead of Fashion-MNIST
            (see :func:`scene_objects`); ``None``: Fashion-MNIST.
        texture_waves: number of random low-frequency sinusoids summed into a styled background.
        texture_low, texture_high: range of the styled background's intensity.
        noise_std: standard deviation of the styled pixel noise (added to objects and background alike).
        seed: base seed; scene ``i`` of a split is a function of ``(seed, split, i)``.
    """

    canvas: int = 56
    min_objects: int = 2
    max_objects: int = 4
    min_scale: float = 0.6
    max_scale: float = 1.0
    max_overlap: float = 0.25
    placement_tries: int = 12
    mask_threshold: int = 40
    homography_jitter: float = 0.12
    brightness: float = 0.15
    contrast: float = 0.25
    texture_waves: int = 3
    texture_low: float = 0.15
    texture_high: float = 0.6
    noise_std: float = 0.08
    seed: int = 0
    objects: str | None = None

    def __post_init__(self) -> None:
        if self.canvas < 28:
            raise ConfigError(f"the scene canvas must be at least 28 pixels (one object), got {self.canvas}")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ConfigError(
                f"scene objects: need 1 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}"
            )
        if not 0 < self.min_scale <= self.max_scale <= 1:
            raise ConfigError(
                f"scene object scales must satisfy 0 < min_scale <= max_scale <= 1, got {self.min_scale}, "
                f"{self.max_scale}"
            )
        if not 0 <= self.max_overlap <= 1:
            raise ConfigError(f"scene max_overlap must lie in [0, 1], got {self.max_overlap}")
        if not 0 <= self.homography_jitter < 0.25:
            raise ConfigError(
                f"scene homography_jitter must lie in [0, 0.25) (a share of the canvas), got {self.homography_jitter}"
            )
        if not (0 <= self.brightness < 0.5 and 0 <= self.contrast < 1):
            raise ConfigError(
                f"scene photometric change: need 0 <= brightness < 0.5 and 0 <= contrast < 1, got "
                f"{self.brightness}, {self.contrast}"
            )
        if self.placement_tries < 1 or not 0 <= self.mask_threshold < 255:
            raise ConfigError("scene placement_tries must be positive and mask_threshold in [0, 255)")


@dataclass(frozen=True, eq=False)
class SceneObjects:
    """The pool a scene draws its objects from.

    Args:
        images: uint8 object images ``(N, 28, 28)``, dark background.
        labels: their classes ``(N,)`` in ``[0, 10)``.
        split: ``"train"`` or ``"test"``; part of every scene's seed.
        source: where the objects come from, for descriptions.
        folder: the folder they were loaded from (``""``: given in memory), so that a pickled
            :class:`SceneItems` reloads them instead of carrying them.
        user: ``True`` for a user's objects (``SceneConfig.objects``), ``False`` for Fashion-MNIST / digits.
        class_names: the name of each class (``None``: the indices).
    """

    images: torch.Tensor
    labels: torch.Tensor
    split: str
    source: str = ""
    folder: str = ""
    user: bool = False
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.split not in _SPLITS:
            raise ValueError(f"split must be train or test, got {self.split!r}")
        if self.images.dtype != torch.uint8 or self.images.shape[1:] != (28, 28) or len(self.images) < 1:
            raise DataError(f"scene objects must be uint8 (N, 28, 28), got {self.images.dtype} {self.images.shape}")
        if len(self.labels) != len(self.images):
            raise DataError(f"{len(self.images)} scene objects but {len(self.labels)} labels")


def _generator(seed: int, split: str, index: int, stream: int = 0) -> torch.Generator:
    """A generator seeded from ``(seed, split, index, stream)`` alone (a fixed integer mix, no hashing salt)."""
    key = (((seed * 1_000_003 + _SPLITS[split]) * 2_147_483_647 + index) * 65_537 + stream) % (2**63 - 1)
    return torch.Generator().manual_seed(key)


class _Draws:
    """Uniform numbers in [0, 1) drawn from one generator in a single call (per-call overhead dominates
    small scenes), handed out in order; more are drawn when they run out, so the sequence stays a pure
    function of the generator's seed."""

    def __init__(self, g: torch.Generator, n: int) -> None:
        self.g, self.n = g, n
        self.u = torch.rand(n, generator=g, dtype=torch.float64).numpy()
        self.i = 0

    def take(self, k: int = 1) -> np.ndarray:
        if self.i + k > len(self.u):
            more = torch.rand(max(k, self.n), generator=self.g, dtype=torch.float64).numpy()
            self.u, self.i = np.concatenate([self.u[self.i :], more]), 0
        out = self.u[self.i : self.i + k]
        self.i += k
        return out

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * float(self.take()[0])

    def integer(self, n: int) -> int:
        """Uniform in ``[0, n)``."""
        return min(int(self.take()[0] * n), n - 1)


def _solve_homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    x, y, u, v = src[:, 0], src[:, 1], dst[:, 0], dst[:, 1]
    one, zero = np.ones_like(x), np.zeros_like(x)
    a = np.concatenate(
        [
            np.stack([x, y, one, zero, zero, zero, -u * x, -u * y], axis=1),
            np.stack([zero, zero, zero, x, y, one, -v * x, -v * y], axis=1),
        ]
    )
    h = np.linalg.solve(a, np.concatenate([u, v]))
    return np.append(h, 1.0).reshape(3, 3)


def solve_homography(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """The 3x3 homography ``H`` (``H[2, 2] = 1``) mapping four points ``src`` onto ``dst`` (the 8x8 DLT system:
    ``u (h31 x + h32 y + 1) = h11 x + h12 y + h13`` and likewise for ``v``, per point).

    Shapes:
        - src, dst: ``(4, 2)`` points ``(x, y)``
        - output: ``(3, 3)`` float64, ``H @ (x, y, 1) ~ (u, v, 1)``
    """
    src = torch.as_tensor(src, dtype=torch.float64).numpy()
    dst = torch.as_tensor(dst, dtype=torch.float64).numpy()
    return torch.from_numpy(_solve_homography(src, dst))


def apply_homography(h: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Map points through a homography.

    Shapes:
        - h: ``(3, 3)``
        - points: ``(..., 2)`` ``(x, y)``
        - output: ``(..., 2)``
    """
    p = torch.cat([points, torch.ones_like(points[..., :1])], dim=-1) @ h.to(points.dtype).T
    return p[..., :2] / p[..., 2:]


@functools.lru_cache(maxsize=8)
def _pixel_grid(size: int) -> np.ndarray:
    """``(S, S, 3)`` float64 homogeneous pixel-centre coordinates ``(x, y, 1)``."""
    r = np.arange(size, dtype=np.float64)
    yy, xx = np.meshgrid(r, r, indexing="ij")
    return np.stack([xx, yy, np.ones_like(xx)], axis=-1)


@functools.lru_cache(maxsize=64)
def _resize_matrix(size: int) -> np.ndarray:
    """``A`` ``(size, 28)`` with ``A @ X @ A.T`` equal to ``F.interpolate(X, size, "bilinear", antialias=True)``
    (the resize is separable; row ``j`` set to ones resizes to ``A[:, j]`` in every column)."""
    basis = torch.eye(28)[:, :, None].expand(28, 28, 28).contiguous()[:, None]  # image j: row j all ones
    out = F.interpolate(basis, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out[:, 0, :, 0].T.contiguous().numpy().astype(np.float32)


def _texture(g: torch.Generator, cfg: SceneConfig) -> np.ndarray:
    """A styled background: a random sum of low-frequency plane waves ``sin(2 pi (fx x + fy y) + phase)`` scaled
    into the texture range, ``(S, S)`` float32 (each wave as ``sin(a + b) = sin a cos b + cos a sin b``, two
    outer products)."""
    k = cfg.texture_waves
    u = torch.rand(3, k, generator=g, dtype=torch.float64).numpy()
    freq, angle, phase = 1 + 3 * u[0], 2 * np.pi * u[1], 2 * np.pi * u[2]  # 1-4 periods across the canvas
    r = np.arange(cfg.canvas, dtype=np.float64) * (2 * np.pi / cfg.canvas)
    ax = np.outer(freq * np.cos(angle), r) + phase[:, None]  # (k, S): the x part, with the phase
    by = np.outer(freq * np.sin(angle), r)  # (k, S): the y part
    waves = np.cos(by).T @ np.sin(ax) + np.sin(by).T @ np.cos(ax)  # (S rows = y, S columns = x)
    lo, hi = waves.min(), waves.max()
    waves = (waves - lo) / max(hi - lo, 1e-6)
    return (cfg.texture_low + (cfg.texture_high - cfg.texture_low) * waves).astype(np.float32)


def _to_uint8(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)[None])


def _place(u: _Draws, cfg: SceneConfig, objects: SceneObjects, instances: np.ndarray, areas: list[int], visible):
    """Draw one object and a position for it; ``None`` when no position within the tries respects the overlap.

    ``areas[k]`` / ``visible[k]``: mask pixels and still visible pixels of the (k+1)-th placed object."""
    s = cfg.canvas
    obj = u.integer(len(objects.images))
    size = max(1, min(28, int(round(28 * u.uniform(cfg.min_scale, cfg.max_scale)))))
    pix = objects.images[obj].numpy().astype(np.float32) * (1 / 255)
    if size != 28:
        a = _resize_matrix(size)
        pix = a @ pix @ a.T
    mask = pix > cfg.mask_threshold / 255
    area = int(mask.sum())
    tries = u.take(2 * cfg.placement_tries)
    if area == 0:
        return None
    for t in range(cfg.placement_tries):
        top, left = (
            min(int(tries[2 * t] * (s - size + 1)), s - size),
            min(int(tries[2 * t + 1] * (s - size + 1)), s - size),
        )
        under = instances[top : top + size, left : left + size][mask]
        covered = under[under > 0]
        if len(covered) > cfg.max_overlap * area:
            continue
        if len(covered):
            counts = np.bincount(covered, minlength=len(areas) + 1)
            if any(visible[k] - counts[k + 1] < (1 - cfg.max_overlap) * areas[k] for k in range(len(areas))):
                continue
        return obj, top, left, size, pix, mask, area
    return None


def render_scene(
    index: int,
    cfg: SceneConfig,
    objects: SceneObjects,
    style: str = "clean",
    seed: int | None = None,
    views: bool = True,
) -> dict[str, torch.Tensor]:
    """Render scene ``index`` of ``objects.split``: a pure function of ``(seed, objects.split, index)``.

    The layout, view 2 and the removed object draw from one generator; the style (texture, noise) from a
    second one, so a scene rendered ``"clean"`` and ``"styled"`` has the same layout, homography and
    photometric change. View 2 warps the (styled) view 1 through ``homography`` (bilinear for the image,
    nearest pixel for the labels), then changes brightness and contrast. The removed object is drawn among
    the objects lying on nothing but background, so removing it reveals background only.

    Args:
        index: which scene (any non-negative integer).
        cfg: the scene configuration.
        objects: the object pool (its ``split`` is part of the seed).
        style: ``"clean"`` (black background) or ``"styled"`` (textured background plus pixel noise).
        seed: base seed (``None``: ``cfg.seed``).
        views: ``False`` skips view 2 and the "after" image (their keys are absent): faster, for
            image-only items.

    Returns:
        a dict with

        - ``image`` uint8 ``(1, S, S)``: view 1.
        - ``labels`` int64 ``(S, S)``: 0 background, ``1 + class`` on object pixels.
        - ``instances`` int64 ``(S, S)``: 0 background, ``k`` on the pixels of the k-th placed object (1-based).
        - ``present`` float32 ``(10,)``: multi-hot classes with visible pixels.
        - ``background`` uint8 ``(1, S, S)``: the canvas without objects (same style and noise).
        - ``object_ids`` int64 ``(n,)``: the placed objects' indices in ``objects``, in drawing order.
        - ``boxes`` int64 ``(n, 3)``: each placed object's ``(top, left, size)``; it covers rows
          ``top .. top + size - 1`` and columns ``left .. left + size - 1``, resized to ``size`` x ``size``.
        - ``view2`` uint8 ``(1, S, S)``: the layout seen through the homography, with the photometric change
          (0 where view 2 sees outside view 1).
        - ``labels2`` int64 ``(S, S)``: labels of view 2, 255 where view 2 sees outside view 1.
        - ``valid2`` bool ``(S, S)``: view-2 pixels whose centre maps inside view 1's canvas.
        - ``homography`` float32 ``(3, 3)``: view-1 coordinates ``(x, y, 1)`` to view-2 coordinates.
        - ``photometric`` float32 ``(2,)``: view 2's ``(contrast c, brightness b)``: ``clamp(c * x + b, 0, 1)``.
        - ``after`` uint8 ``(1, S, S)``: view 1 with one object removed (its pixels show the background).
        - ``removed`` uint8 ``(1, 28, 28)``: that object's image as drawn from the pool (unscaled).
        - ``removed_class`` int64 ``()``; ``removed_instance`` int64 ``()`` (its value in ``instances``).
    """
    if style not in STYLES:
        raise ConfigError(f"scene style must be clean or styled, got {style!r}")
    seed = cfg.seed if seed is None else seed
    s = cfg.canvas
    u = _Draws(_generator(seed, objects.split, index), 1 + cfg.max_objects * (2 + 2 * cfg.placement_tries) + 11)
    n = cfg.min_objects + u.integer(cfg.max_objects - cfg.min_objects + 1)
    canvas = np.zeros((s, s), dtype=np.float32)
    labels = np.zeros((s, s), dtype=np.int64)
    instances = np.zeros((s, s), dtype=np.int64)
    areas: list[int] = []
    visible: list[int] = []
    placed: list[tuple[int, bool, int, int, int]] = []  # (object id, lies on background only, top, left, size)
    for k in range(n):
        got = _place(u, cfg, objects, instances, areas, visible)
        while got is None and k == 0:  # the first object always fits an empty canvas (unless it has no pixels)
            got = _place(u, cfg, objects, instances, areas, visible)
        if got is None:
            continue
        obj, top, left, size, pix, mask, area = got
        region = (slice(top, top + size), slice(left, left + size))
        under = instances[region][mask]
        on_background = not bool((under > 0).any())
        if not on_background:
            covered = np.bincount(under, minlength=len(visible) + 1)
            visible = [v - int(c) for v, c in zip(visible, covered[1:], strict=False)]
        visible.append(area)
        canvas[region][mask] = pix[mask]
        labels[region][mask] = 1 + int(objects.labels[obj])
        instances[region][mask] = len(areas) + 1
        areas.append(area)
        placed.append((obj, on_background, top, left, size))
    object_pixels = instances > 0

    if style == "styled":
        gs = _generator(seed, objects.split, index, _STYLE_STREAM)
        noise = cfg.noise_std * torch.randn(s, s, generator=gs).numpy()
        background = np.clip(_texture(gs, cfg) + noise, 0, 1)
        image = np.where(object_pixels, np.clip(canvas + noise, 0, 1), background)
    else:
        background = np.zeros((s, s), dtype=np.float32)
        image = canvas
    present = torch.zeros(10)
    present[np.unique(labels[object_pixels]) - 1] = 1
    out = {
        "image": _to_uint8(image),
        "labels": torch.from_numpy(labels),
        "instances": torch.from_numpy(instances),
        "present": present,
        "background": _to_uint8(background),
        "object_ids": torch.tensor([p[0] for p in placed], dtype=torch.long),
        "boxes": torch.tensor([p[2:] for p in placed], dtype=torch.long).view(-1, 3),
    }
    if not views:
        return out

    # view 2: sample view 1 at H^-1 p for every pixel centre p of view 2
    c0, c1 = -0.5, s - 0.5
    corners = np.array([[c0, c0], [c1, c0], [c1, c1], [c0, c1]])
    h = _solve_homography(corners, corners + (2 * u.take(8).reshape(4, 2) - 1) * cfg.homography_jitter * s)
    c = u.uniform(1 - cfg.contrast, 1 + cfg.contrast)
    b = u.uniform(-cfg.brightness, cfg.brightness)
    q = _pixel_grid(s) @ np.linalg.inv(h).T
    q = q[..., :2] / q[..., 2:]  # (S, S, 2) view-1 coordinates of view 2's pixel centres
    valid = ((q >= -0.5) & (q < s - 0.5)).all(-1)
    grid = torch.from_numpy(((q + 0.5) * (2 / s) - 1).astype(np.float32))[None]
    image_u8 = out["image"]
    warped = F.grid_sample(image_u8.float()[None] / 255, grid, mode="bilinear", align_corners=False)[0, 0].numpy()
    view2 = np.where(valid, np.clip(c * warped + b, 0, 1), 0)
    near = np.clip(np.rint(q).astype(np.int64), 0, s - 1)
    labels2 = np.where(valid, labels[near[..., 1], near[..., 0]], IGNORE)

    # the removed object: uniform among those lying on background only (the first placed always does)
    candidates = [k for k, p in enumerate(placed) if p[1]]
    pick = candidates[u.integer(len(candidates))]
    obj = placed[pick][0]
    after = torch.where(torch.from_numpy(instances == pick + 1)[None], out["background"], image_u8)
    out.update(
        view2=_to_uint8(view2),
        labels2=torch.from_numpy(labels2),
        valid2=torch.from_numpy(valid),
        homography=torch.from_numpy(h.astype(np.float32)),
        photometric=torch.tensor([c, b], dtype=torch.float32),
        after=after,
        removed=objects.images[obj].unsqueeze(0).clone(),
        removed_class=objects.labels[obj].long().clone(),
        removed_instance=torch.tensor(pick + 1),
    )
    return out


def render_centered(image: torch.Tensor, canvas: int) -> torch.Tensor:
    """A 28x28 object on the centre of a clean (black) canvas: the probe inputs of scene data.

    Shapes:
        - image: ``(28, 28)`` or ``(1, 28, 28)`` uint8
        - output: ``(1, canvas, canvas)`` uint8
    """
    image = image.reshape(28, 28)
    out = torch.zeros(1, canvas, canvas, dtype=torch.uint8)
    top = (canvas - 28) // 2
    out[0, top : top + 28, top : top + 28] = image
    return out


# ----------------------------------------------------------------------------------------------- object pools


def _digits_objects() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    from ssl_core.data import stratified_split

    x, y = load_digits(return_X_y=True)
    x = torch.from_numpy((x * (255 / 16)).round().astype("uint8")).view(-1, 1, 8, 8)
    x = F.interpolate(x.float(), size=(28, 28), mode="bilinear", antialias=True, align_corners=False)
    x = x.round().clamp(0, 255).to(torch.uint8)[:, 0]
    y = torch.from_numpy(y).long()
    tr, te = stratified_split(y, 0.2, 0)
    return x[tr], y[tr], x[te], y[te]


@functools.lru_cache(maxsize=4)
def _object_pools(folder: str, user: bool = False) -> tuple[SceneObjects, SceneObjects]:
    from ssl_vision.data.idx import is_idx_folder, load_idx_folder

    if user:
        return _user_pools(folder)

    root = Path(folder)
    if is_idx_folder(root):
        x, y, xt, yt = load_idx_folder(root)
        if x.ndim == 4:
            x, xt = x[:, 0], (None if xt is None else xt[:, 0])
        if x.shape[1:] != (28, 28):
            raise DataError(f"scene objects must be 28x28 images, {root} holds {tuple(x.shape[1:])}")
        if xt is None:
            raise DataError(f"{root} has no t10k-* test split, needed for the test scenes")
        src = f"Fashion-MNIST ({root})"
        from ssl_vision.data.images import FASHION_MNIST_CLASSES

        names = FASHION_MNIST_CLASSES
    else:
        print(
            f"note: Fashion-MNIST not found in {root} (apt-get install dataset-fashion-mnist); the scenes use "
            "scikit-learn's digits (1,797 8x8 images) as objects instead",
            file=sys.stderr,
        )
        x, y, xt, yt = _digits_objects()
        src = "scikit-learn digits"
        names = tuple(str(d) for d in range(10))
    return (
        SceneObjects(x, y.long(), "train", src, folder, class_names=names),
        SceneObjects(xt, yt.long(), "test", src, folder, class_names=names),
    )


def _user_pools(path: str) -> tuple[SceneObjects, SceneObjects]:
    """A user's labelled object images, read by :func:`ssl_vision.data.images.load_data` as 28x28 grayscale;
    their test split (IDX ``t10k-*``, ``test_images.npy``) or a stratified 20% of each class is the test pool."""
    from ssl_vision.data.images import VisionDataConfig, load_data

    bundle = load_data(VisionDataConfig(path=path, image_size=28, channels=1))
    if bundle.probe_train is None:
        raise DataError(
            f"scene objects need class labels, {path} has none: give class subfolders, IDX files with labels, or "
            "a .npy folder with labels.npy"
        )
    pools = []
    for split, part in (("train", bundle.probe_train), ("test", bundle.probe_test)):
        base = part.inputs.base  # the uint8 images behind the normalised probe inputs
        x = torch.stack([base[i] for i in range(len(base))])[:, 0]
        y = part.labels.long()
        if int(y.max()) >= 10 or int(y.min()) < 0:
            raise DataError(
                f"scenes take at most 10 object classes (label maps hold 1 + class, 11 classes with the "
                f"background); {path} has labels up to {int(y.max())}"
            )
        names = tuple(part.class_names) if part.class_names is not None else None
        pools.append(SceneObjects(x, y, split, path, path, True, names))
    return pools[0], pools[1]


def scene_objects(split: str = "train", path: str | None = None) -> SceneObjects:
    """The object pool of a split, loaded once per process.

    Args:
        split: ``"train"`` or ``"test"``.
        path: ``None``: Fashion-MNIST's train or test images (or scikit-learn's digits, 80 / 20 stratified,
            with a note when Fashion-MNIST is not installed); else a folder of labelled object images (class
            subfolders, IDX files or ``.npy`` arrays, as ``--data`` takes them, at most 10 classes), read as
            28x28 grayscale: objects should be light on a dark background (their mask is the pixels above
            ``SceneConfig.mask_threshold``). Its test split, or a stratified 20% of each class, is the test pool.
    """
    from ssl_vision.data import images

    if split not in _SPLITS:
        raise ConfigError(f"scene split must be train or test, got {split!r}")
    if path is None:
        train, test = _object_pools(str(images.FASHION_MNIST_DIR))
    else:
        train, test = _object_pools(str(Path(path).expanduser()), True)
    return train if split == "train" else test


# ----------------------------------------------------------------------------------------------------- loader

_TARGET_STREAM = 104_729  # "domains" items: the styled target scene has a layout of its own


class SceneItems(Dataset):
    """Pretraining items of generated scenes, rendered on the fly (item ``i`` is scene ``i`` of the train split).

    Args:
        cfg: the scene configuration.
        n: number of items.
        items: ``"image"`` (uint8 ``(1, S, S)``), ``"pair"`` (``{"image", "view2", "homography", "valid2"}``)
            or ``"domains"`` (``{"source", "source_labels", "target"}``: a clean scene, its labels, and a styled
            scene of an independent layout).
        style: ``"clean"`` or ``"styled"`` for ``image`` and ``pair`` items.
        objects: the object pool (default: the train pool); pickled by reference (its split), not by value,
            so DataLoader workers reload it from the same place.
    """

    def __init__(
        self, cfg: SceneConfig, n: int, items: str = "image", style: str = "clean", objects: SceneObjects | None = None
    ) -> None:
        if items not in ("image", "pair", "domains"):
            raise ConfigError(f"scene items must be image, pair or domains, got {items!r}")
        if style not in STYLES:
            raise ConfigError(f"scene style must be clean or styled, got {style!r}")
        self.cfg, self.n, self.items, self.style = cfg, n, items, style
        self.objects = objects if objects is not None else scene_objects("train", cfg.objects)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if not 0 <= i < self.n:
            raise IndexError(f"scene {i} out of range ({self.n} items)")
        cfg, objs = self.cfg, self.objects
        if self.items == "image":
            return render_scene(i, cfg, objs, self.style, views=False)["image"]
        if self.items == "pair":
            d = render_scene(i, cfg, objs, self.style)
            return {k: d[k] for k in ("image", "view2", "homography", "valid2")}
        src = render_scene(i, cfg, objs, "clean", views=False)
        tgt = render_scene(i, cfg, objs, "styled", seed=cfg.seed + _TARGET_STREAM, views=False)
        return {"source": src["image"], "source_labels": src["labels"], "target": tgt["image"]}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self.objects.folder:  # a loaded pool travels as its name; an in-memory one by value
            state["objects"] = (self.objects.split, self.objects.folder, self.objects.user)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if isinstance(self.objects, tuple):
            split, folder, user = self.objects
            train, test = _object_pools(folder, user)
            self.objects = train if split == "train" else test


class CenteredObjects(Dataset):
    """Object images placed at the centre of a clean canvas: item ``i`` is a uint8 ``(1, S, S)`` tensor.

    Args:
        images: uint8 ``(N, 28, 28)``.
        canvas: side ``S``.
    """

    def __init__(self, images: torch.Tensor, canvas: int) -> None:
        self.images, self.canvas = images, canvas

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return render_centered(self.images[i], self.canvas)


@functools.lru_cache(maxsize=16)
def scene_stats(cfg: SceneConfig, style: str = "clean", n: int = 500) -> tuple[tuple[float], tuple[float]]:
    """Mean and standard deviation (in [0, 1]) of ``n`` train scenes' pixels: the normalisation of scene data.

    Returns:
        ``((mean,), (std,))``, one channel.
    """
    objs = scene_objects("train", cfg.objects)
    x = torch.stack([render_scene(i, cfg, objs, style, views=False)["image"] for i in range(n)]).float() / 255
    return (float(x.mean()),), (max(float(x.std()), 1e-3),)


def _resolve(info_or_config) -> tuple[SceneConfig, tuple[float, ...], tuple[float, ...]]:
    from ssl_vision.data.images import ImageInfo, VisionDataConfig

    if isinstance(info_or_config, ImageInfo):
        if info_or_config.scenes is None:
            raise ConfigError("these images are not generated scenes (info.scenes is None): set data.name=scenes")
        return info_or_config.scenes, tuple(info_or_config.mean), tuple(info_or_config.std)
    if isinstance(info_or_config, VisionDataConfig):
        if info_or_config.name != "scenes":
            raise ConfigError(f"segmentation scenes need data.name=scenes, got data.name={info_or_config.name}")
        cfg = info_or_config.scene_config()
        mean, std = scene_stats(cfg, "clean" if info_or_config.scene_items == "domains" else info_or_config.scene_style)
        return cfg, mean, std
    if isinstance(info_or_config, SceneConfig):
        return (info_or_config, *scene_stats(info_or_config))
    raise TypeError(f"expected an ImageInfo, VisionDataConfig or SceneConfig, got {type(info_or_config).__name__}")


@functools.lru_cache(maxsize=8)
def _segmentation_split(
    cfg: SceneConfig, n: int, split: str, style: str, mean: tuple[float, ...], std: tuple[float, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    objs = scene_objects(split, cfg.objects)
    seed = cfg.seed + _SEGMENTATION_STREAM
    scenes = [render_scene(i, cfg, objs, style, seed=seed, views=False) for i in range(n)]
    images = torch.stack([d["image"] for d in scenes]).float().div_(255)
    images = (images - mean[0]) / std[0]
    return images, torch.stack([d["labels"] for d in scenes])


def segmentation_split(info_or_config, n: int, split: str = "train", style: str = "clean"):
    """Labelled scenes for segmentation probes: deterministic, and cached in memory (a call with the same
    arguments returns the same tensors: do not modify them in place).

    Train scenes draw their objects from the train split, test scenes from the test split; both use a seed
    stream apart from the pretraining scenes.

    Args:
        info_or_config: the bundle's :class:`~ssl_vision.data.images.ImageInfo` (its ``scenes`` and normalisation),
            a ``VisionDataConfig(name="scenes", ...)`` or a :class:`SceneConfig` (normalised with its clean
            scenes' statistics).
        n: number of scenes.
        split: ``"train"`` or ``"test"``.
        style: ``"clean"`` or ``"styled"``.

    Returns:
        ``(images, labels)``: images float32 normalised ``(N, 1, S, S)``, labels int64 ``(N, S, S)`` in
        ``[0, 11)`` (0 background, ``1 + class``).
    """
    if split not in _SPLITS:
        raise ConfigError(f"segmentation split must be train or test, got {split!r}")
    if style not in STYLES:
        raise ConfigError(f"scene style must be clean or styled, got {style!r}")
    if n < 1:
        raise ConfigError(f"segmentation_split needs n >= 1, got {n}")
    cfg, mean, std = _resolve(info_or_config)
    return _segmentation_split(cfg, int(n), split, style, tuple(mean), tuple(std))


# scenes of the seg_miou probe: (train, test)
SEG_PROBE_SCENES = (1000, 500)


def load_scenes(data: VisionDataConfig) -> DataBundle:
    """The bundle of ``data.name=scenes``: generated scenes to pretrain on (items per ``data.scene_items``),
    probes on Fashion-MNIST objects centred on a clean canvas (train split -> probe train, test -> test),
    normalised with the scenes' statistics, and the ``seg_miou`` column: a linear per-pixel segmentation probe
    of each row's frozen features on 1,000 clean training scenes, scored on 500 test scenes
    (:func:`ssl_vision.probes.segmentation.scene_segmentation_probe`)."""
    from ssl_vision.data.images import ImageInfo, Normalized
    from ssl_vision.probes.segmentation import scene_segmentation_probe

    cfg = data.scene_config()
    n = data.scenes_train if data.max_train is None else min(data.scenes_train, data.max_train)
    train_objs, test_objs = scene_objects("train", cfg.objects), scene_objects("test", cfg.objects)
    style = "clean" if data.scene_items == "domains" else data.scene_style
    mean, std = scene_stats(cfg, style)
    info = ImageInfo(channels=1, image_size=cfg.canvas, mean=list(mean), std=list(std), num_classes=10, scenes=cfg)
    names = train_objs.class_names
    s = cfg.canvas
    items = {
        "image": f"{style} images",
        "pair": f"{style} view pairs (homography)",
        "domains": "clean source / styled target pairs",
    }[data.scene_items]
    desc = (
        f"scenes of {cfg.min_objects}-{cfg.max_objects} objects ({train_objs.source}) on a {s}x{s} canvas: {n:,} "
        f"{items} per epoch; probes on {len(train_objs.images):,} train / {len(test_objs.images):,} test objects "
        "centred on a clean canvas"
    )
    return DataBundle(
        train=SceneItems(cfg, n, data.scene_items, data.scene_style, train_objs),
        info=info,
        description=desc,
        probe_train=LabeledSplit(
            Normalized(CenteredObjects(train_objs.images, s), mean, std), train_objs.labels, names
        ),
        probe_test=LabeledSplit(Normalized(CenteredObjects(test_objs.images, s), mean, std), test_objs.labels, names),
        extra_probes={
            "seg_miou": scene_segmentation_probe(
                segmentation_split(info, SEG_PROBE_SCENES[0], "train"),
                segmentation_split(info, SEG_PROBE_SCENES[1], "test"),
            )
        },
    )

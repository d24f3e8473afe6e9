"""Rendered scenes for image-to-point distillation (SLidR; Sautier et al., 2022): a camera image, a "lidar"
point cloud seen from a second pose, the calibration between them and SLIC superpixels of the image.

A scene (:func:`render_scene`) is a ground slab (class ``ground``) with 3-6 coloured open3d primitives on it
(box, sphere, cylinder, cone, torus: one colour, its hue set by the class (:data:`CLASS_HUES`), and a random
size, yaw and position per object; tori stand tilted). Two sensors look at it, both ray-cast with
``open3d.t.geometry.RaycastingScene``:

- the **camera**: a pinhole (intrinsics ``K``, world-to-camera extrinsics ``[R | t]``, OpenCV axes: ``x``
  right, ``y`` down, ``z`` forward) at a random azimuth and elevation; each pixel's ray shows the colour of
  the object it hits with Lambertian shading (ambient 0.35 plus 0.65 ``max(0, n . l)`` for a fixed light),
  the sky where it hits nothing. The camera keeps its depth map (``z`` of each hit) and the object hit per
  pixel.
- the **lidar**: at a second pose (azimuth 20-60 degrees away from the camera's, lower), a spherical grid of
  rays (yaw x pitch around its forward direction); the hits, resampled to ``num_points``, are the cloud,
  with the primitive class and object index of each point.

Calibration: every lidar point is projected into the image with ``K [R | t]``; it is **visible** when it lies
in front of the camera, inside the image and not occluded: the camera's ray towards the point (the ray of its
exact sub-pixel position) first hits the scene at the point's own distance (within ``OCCLUSION_TOLERANCE``),
and the camera's depth map at its pixel is within ``DEPTH_TOLERANCE`` (relative) of its depth, which leaves
out points at depth edges, whose pixel shows another surface (the depth test alone, with a tolerance that
keeps surfaces seen at grazing angles, would let through points just behind an edge). A visible point's pixel
is ``floor(u, v)`` and its superpixel the SLIC segment (``skimage.segmentation.slic``) of that pixel; other
points get ``-1``.

Samples (:func:`load_scenes`) are dicts of tensors: ``points`` ``(N, 3)`` float32 (centred on the mean and
scaled into the unit sphere, ``z`` up), ``labels`` ``(N,)`` class per point (:data:`CLASSES`), ``objects``
``(N,)`` object per point (0: the ground), ``pixel`` ``(N,)`` flat pixel index ``v * W + u`` (``-1``:
not visible), ``image`` ``(3, H, W)`` uint8, ``superpixels`` ``(H, W)`` int64 segment per pixel and
``point_superpixel`` ``(N,)`` (``-1``: not visible).

Sets are cached under ``~/.cache/selfsup/pointcloud`` (``$XDG_CACHE_HOME``), keyed by their settings and a
digest of this module's code; scene ``i`` of a split is drawn from its own generator
``SeedSequence(seed, spawn_key=(split, i))``, so a set does not depend on how it is generated.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from ssl_core.data import DataBundle, LabeledSplit
from ssl_core.errors import ConfigError, DataError
from ssl_core.io import atomic_write
from ssl_pointcloud.data.config import cache_root
from ssl_pointcloud.descriptors import d2_histogram
from ssl_pointcloud.info import PointInfo

CLASSES = ("ground", "box", "sphere", "cylinder", "cone", "torus")
PRIMITIVES = CLASSES[1:]
SKY = np.array([0.75, 0.85, 0.95])  # colour of rays that hit nothing
LIGHT = np.array([0.4, -0.3, 0.85]) / np.linalg.norm([0.4, -0.3, 0.85])  # direction towards the light
AMBIENT = 0.35
OCCLUSION_TOLERANCE = 1e-3  # a point is hidden when the camera's ray towards it stops this much (relative) short
DEPTH_TOLERANCE = 0.05  # relative difference of a point's depth from the depth map at its pixel, at most
CAMERA_FOV = 55.0  # degrees, horizontal and vertical (square images)
LIDAR_YAW = 38.0  # half-width of the lidar's horizontal field, degrees
LIDAR_PITCH = (-22.0, 8.0)  # pitch range of the lidar's rays about its forward direction, degrees
LIDAR_GRID = (48, 96)  # pitch x yaw rays
GROUND_SIZE = 7.0
VERSION = 1  # of this generator: part of the cache key
SPLITS = {"train": 0, "probe_train": 1, "probe_test": 2}


@functools.cache
def generator_digest() -> str:
    """A digest of the generator's code (the functions that draw and render scenes, and the constants they
    read), part of the cache key: a changed generator never reuses old scenes, while edits elsewhere in the
    module (the probe) keep the cache (and SLidR's cached teachers, whose key holds the scenes' key)."""
    fns = (_templates, _rotation, look_at, intrinsics, project, camera_rays, _lidar_rays, _place_objects, _colour)
    h = hashlib.sha1()
    for fn in (*fns, render_scene, scene_rng, generate_scenes):
        h.update(inspect.getsource(fn).encode())
    constants = (CLASSES, SKY, LIGHT, AMBIENT, OCCLUSION_TOLERANCE, DEPTH_TOLERANCE, CAMERA_FOV, LIDAR_YAW)
    h.update(repr((*constants, LIDAR_PITCH, LIDAR_GRID, GROUND_SIZE, SPLITS, CLASS_HUES, HUE_SPREAD)).encode())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class SceneConfig:
    """What a set of scenes depends on (its cache key).

    Args:
        num_scenes: scenes in the set.
        num_points: lidar points per scene.
        image_size: side of the square camera image in pixels.
        n_segments: SLIC's target number of superpixels per image.
        compactness: SLIC's compactness (colour against space).
        min_objects, max_objects: primitives per scene, drawn uniformly.
        seed: seeds the set (with the split).
    """

    num_scenes: int = 1000
    num_points: int = 1024
    image_size: int = 64
    n_segments: int = 48
    compactness: float = 10.0
    min_objects: int = 3
    max_objects: int = 6
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_scenes < 1 or self.num_points < 16 or self.image_size < 8 or self.n_segments < 2:
            raise ConfigError(
                f"SceneConfig needs num_scenes >= 1, num_points >= 16, image_size >= 8 and n_segments >= 2; got "
                f"{self.num_scenes}, {self.num_points}, {self.image_size}, {self.n_segments}"
            )
        if not 1 <= self.min_objects <= self.max_objects <= 8:
            raise ConfigError(f"need 1 <= min_objects <= max_objects <= 8, got {self.min_objects}, {self.max_objects}")

    def key(self, split: str) -> str:
        """The cache key of this set's ``split``."""
        text = json.dumps({**asdict(self), "split": split, "version": VERSION, "code": generator_digest()})
        return hashlib.sha1(text.encode()).hexdigest()[:16]


@dataclass
class Scene:
    """One rendered scene with everything the calibration needs (world coordinates).

    Shapes:
        - image: ``(H, W, 3)`` uint8; depth: ``(H, W)`` float (``inf``: sky); pixel_object: ``(H, W)`` int
          (object index per pixel, ``-1``: sky); superpixels: ``(H, W)`` int
        - K: ``(3, 3)``; R: ``(3, 3)``; t: ``(3,)`` (world-to-camera: ``x_cam = R x + t``)
        - world: ``(N, 3)`` lidar points in world coordinates; points: the same, centred and in the unit sphere
        - labels, objects, pixel, point_superpixel: ``(N,)`` ints (``-1`` where not visible)
        - object_class: ``(num_objects + 1,)`` class of each object (index 0: the ground)
    """

    image: np.ndarray
    depth: np.ndarray
    pixel_object: np.ndarray
    superpixels: np.ndarray
    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    world: np.ndarray
    points: np.ndarray
    labels: np.ndarray
    objects: np.ndarray
    pixel: np.ndarray
    point_superpixel: np.ndarray
    object_class: np.ndarray


@functools.cache
def _templates() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Vertices and triangles of each primitive, about unit size, centred on the origin (main axis ``z``)."""
    import open3d as o3d

    tm = o3d.geometry.TriangleMesh
    meshes = {
        "box": tm.create_box(1.0, 1.0, 1.0),
        "sphere": tm.create_sphere(0.5, resolution=12),
        "cylinder": tm.create_cylinder(0.4, 1.0, resolution=16),
        "cone": tm.create_cone(0.5, 1.0, resolution=16),
        "torus": tm.create_torus(0.38, 0.14, radial_resolution=20, tubular_resolution=10),
    }
    out = {}
    for name, m in meshes.items():
        v = np.asarray(m.vertices, dtype=np.float64)
        v = v - (v.min(0) + v.max(0)) / 2
        out[name] = (v, np.asarray(m.triangles, dtype=np.uint32))
    return out


def _rotation(axis: int, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def look_at(eye: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera rotation and translation of a camera at ``eye`` looking at ``target`` (``z`` world-up).

    Returns:
        ``(R, t)`` with ``x_cam = R x_world + t``; camera axes ``x`` right, ``y`` down, ``z`` forward.
    """
    fwd = target - eye
    fwd = fwd / np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right = right / np.linalg.norm(right)
    down = np.cross(fwd, right)
    R = np.stack([right, down, fwd])
    return R, -R @ eye


def intrinsics(size: int, fov_deg: float = CAMERA_FOV) -> np.ndarray:
    """Pinhole intrinsics ``K`` of a square ``size`` x ``size`` image with field of view ``fov_deg``."""
    f = size / 2 / np.tan(np.radians(fov_deg) / 2)
    return np.array([[f, 0.0, size / 2], [0.0, f, size / 2], [0.0, 0.0, 1.0]])


def project(points: np.ndarray, K: np.ndarray, R: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project world points into the image: continuous pixel coordinates ``(u, v)`` (pixel ``(i, j)`` covers
    ``[j, j + 1) x [i, i + 1)``) and camera depth ``z``.

    Shapes:
        - points: ``(N, 3)``; output: ``(N, 2)`` and ``(N,)``
    """
    cam = points @ R.T + t
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = (cam @ K.T)[:, :2] / z[:, None]
    return uv, z


def camera_rays(K: np.ndarray, R: np.ndarray, t: np.ndarray, size: int) -> np.ndarray:
    """Rays through the pixel centres, ``(size, size, 6)`` (origin, direction) for open3d; each direction has
    camera ``z`` = 1, so a ray's hit distance ``t_hit`` is the depth of its hit."""
    j, i = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5)
    pix = np.stack([j, i, np.ones_like(i)], -1)  # (H, W, 3): u, v, 1
    d = pix @ np.linalg.inv(K).T @ R  # camera -> world: R^T d_cam
    eye = -R.T @ t
    return np.concatenate([np.broadcast_to(eye, d.shape), d], -1)


def _lidar_rays(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The lidar's spherical grid of unit rays around its forward direction, ``(P, 6)``."""
    fwd = target - eye
    yaw0, pitch0 = np.arctan2(fwd[1], fwd[0]), np.arctan2(fwd[2], np.linalg.norm(fwd[:2]))
    pitch = pitch0 + np.radians(np.linspace(*LIDAR_PITCH, LIDAR_GRID[0]))
    yaw = yaw0 + np.radians(np.linspace(-LIDAR_YAW, LIDAR_YAW, LIDAR_GRID[1]))
    p, y = np.meshgrid(pitch, yaw, indexing="ij")
    d = np.stack([np.cos(p) * np.cos(y), np.cos(p) * np.sin(y), np.sin(p)], -1).reshape(-1, 3)
    return np.concatenate([np.broadcast_to(eye, d.shape), d], -1)


def _place_objects(rng: np.random.Generator, n: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``n`` primitives resting on the ground (``z >= 0``) without overlap: (class, vertices, triangles)."""
    objects: list[tuple[str, np.ndarray, np.ndarray]] = []
    placed: list[tuple[np.ndarray, float]] = []
    for _ in range(n):
        name = PRIMITIVES[rng.integers(len(PRIMITIVES))]
        v, tri = _templates()[name]
        v = v * rng.uniform(0.7, 1.2) * np.exp(rng.uniform(-0.2, 0.2, 3))
        if name == "torus":
            v = v @ _rotation(0, rng.uniform(np.pi / 3, np.pi / 2)).T
        v = v @ _rotation(2, rng.uniform(0, 2 * np.pi)).T
        radius = float(np.linalg.norm(v[:, :2], axis=1).max())
        for _try in range(100):
            xy = rng.uniform(-1.5, 1.5, 2)
            if all(np.linalg.norm(xy - c) > radius + r + 0.05 for c, r in placed):
                break
        placed.append((xy, radius))
        v = v + np.array([xy[0], xy[1], -v[:, 2].min()])
        objects.append((name, v, tri))
    return objects


CLASS_HUES = {"box": 0.0, "sphere": 0.16, "cylinder": 0.33, "cone": 0.55, "torus": 0.75}  # hue centre per class
HUE_SPREAD = 0.05  # each object's hue: its class's centre +- this (uniform)


def _colour(rng: np.random.Generator, name: str) -> np.ndarray:
    """A saturated colour in ``[0, 1]^3`` whose hue depends on the class ``name`` (:data:`CLASS_HUES`, +-
    :data:`HUE_SPREAD`) and whose saturation and brightness are random: appearance tells the class, as road,
    vegetation and cars do in a driving scene, so that an image teacher has something to give the points."""
    h = (CLASS_HUES[name] + rng.uniform(-HUE_SPREAD, HUE_SPREAD)) % 1.0
    s, val = rng.uniform(0.45, 1.0), rng.uniform(0.6, 1.0)
    k = (np.array([5.0, 3.0, 1.0]) + h * 6) % 6
    return val - val * s * np.clip(np.minimum(k, 4 - k), 0, 1)


def render_scene(rng: np.random.Generator, config: SceneConfig = SceneConfig()) -> Scene:
    """Draw and render one scene (see the module docstring) from ``rng``."""
    import open3d as o3d
    from skimage.segmentation import slic

    c, size = config, config.image_size
    n_obj = int(rng.integers(c.min_objects, c.max_objects + 1))
    g = GROUND_SIZE / 2
    ground_v = np.array([[-g, -g, -0.1], [g, -g, -0.1], [g, g, -0.1], [-g, g, -0.1]] * 2, dtype=np.float64)
    ground_v[4:, 2] = 0.0
    ground_t = np.array(
        [[4, 5, 6], [4, 6, 7], [0, 2, 1], [0, 3, 2], [0, 1, 5], [0, 5, 4], [1, 2, 6], [1, 6, 5]]
        + [[2, 3, 7], [2, 7, 6], [3, 0, 4], [3, 4, 7]],
        dtype=np.uint32,
    )
    meshes = [("ground", ground_v, ground_t), *_place_objects(rng, n_obj)]
    ground_colour = rng.uniform(0.35, 0.6) * rng.uniform(0.9, 1.1, 3)
    colours = np.stack([ground_colour] + [_colour(rng, name) for name, _, _ in meshes[1:]])
    object_class = np.array([CLASSES.index(name) for name, _, _ in meshes])
    scene = o3d.t.geometry.RaycastingScene()
    geom_ids = []
    for _, v, tri in meshes:
        geom_ids.append(scene.add_triangles(o3d.core.Tensor(v.astype(np.float32)), o3d.core.Tensor(tri)))
    id_to_object = np.full(max(geom_ids) + 2, -1)
    id_to_object[np.array(geom_ids)] = np.arange(len(meshes))

    def cast(rays: np.ndarray) -> dict[str, np.ndarray]:
        ans = scene.cast_rays(o3d.core.Tensor(np.ascontiguousarray(rays, dtype=np.float32)))
        gid = ans["geometry_ids"].numpy().astype(np.int64)
        obj = np.where(gid == scene.INVALID_ID, -1, id_to_object[np.minimum(gid, len(id_to_object) - 1)])
        return {"t": ans["t_hit"].numpy(), "object": obj, "normal": ans["primitive_normals"].numpy()}

    # camera
    target = np.array([rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3), 0.3])
    az, el, dist = rng.uniform(0, 2 * np.pi), np.radians(rng.uniform(25, 45)), rng.uniform(3.6, 4.4)
    eye = target + dist * np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    K = intrinsics(size)
    R, t = look_at(eye, target)
    rays = camera_rays(K, R, t, size)
    hit = cast(rays.reshape(-1, 6))
    obj_map = hit["object"].reshape(size, size)
    depth = np.where(obj_map >= 0, hit["t"].reshape(size, size), np.inf)
    n = hit["normal"].reshape(size, size, 3)
    d = rays[..., 3:]
    n = np.where((np.sum(n * d, -1) > 0)[..., None], -n, n)  # face the camera
    shade = AMBIENT + (1 - AMBIENT) * np.clip(n @ LIGHT, 0, 1)
    rgb = np.where((obj_map >= 0)[..., None], colours[np.maximum(obj_map, 0)] * shade[..., None], SKY)
    image = np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)
    superpixels = slic(image, n_segments=c.n_segments, compactness=c.compactness, start_label=0, channel_axis=-1)

    # lidar, 20-60 degrees of azimuth away, lower
    az2 = az + rng.choice([-1, 1]) * np.radians(rng.uniform(20, 60))
    el2, dist2 = np.radians(rng.uniform(12, 25)), rng.uniform(3.0, 3.8)
    eye2 = target + dist2 * np.array([np.cos(el2) * np.cos(az2), np.cos(el2) * np.sin(az2), np.sin(el2)])
    lrays = _lidar_rays(eye2, target)
    lhit = cast(lrays)
    ok = np.flatnonzero(lhit["object"] >= 0)
    if len(ok) == 0:
        raise DataError("the lidar hit nothing: the scene generator is broken")
    pick = rng.choice(ok, c.num_points, replace=len(ok) < c.num_points)
    world = lrays[pick, :3] + lhit["t"][pick, None] * lrays[pick, 3:]
    objects = lhit["object"][pick]

    # calibration: project into the camera, keep points in front, inside the image and not occluded
    uv, z = project(world, K, R, t)
    inside = (z > 0) & np.all(np.isfinite(uv), 1) & np.all((uv >= 0) & (uv < size), 1)
    ij = np.where(inside[:, None], np.floor(np.nan_to_num(uv)).astype(np.int64), 0).clip(0, size - 1)
    to_point = world - eye
    dist = np.linalg.norm(to_point, axis=1)
    first = cast(np.concatenate([np.broadcast_to(eye, world.shape), to_point / dist[:, None]], 1))["t"]
    at_pixel = depth[ij[:, 1], ij[:, 0]]
    visible = inside & (first >= dist * (1 - OCCLUSION_TOLERANCE)) & (np.abs(at_pixel - z) <= DEPTH_TOLERANCE * z)
    pixel = np.where(visible, ij[:, 1] * size + ij[:, 0], -1)
    point_superpixel = np.where(visible, superpixels.reshape(-1)[np.maximum(pixel, 0)], -1)
    centred = world - world.mean(0)
    points = centred / max(np.linalg.norm(centred, axis=1).max(), 1e-9)
    return Scene(
        image=image,
        depth=depth,
        pixel_object=obj_map,
        superpixels=superpixels,
        K=K,
        R=R,
        t=t,
        world=world,
        points=points.astype(np.float32),
        labels=object_class[objects],
        objects=objects,
        pixel=pixel,
        point_superpixel=point_superpixel,
        object_class=object_class,
    )


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of scene ``index`` of ``split`` (``train``, ``probe_train``, ``probe_test``)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SPLITS[split], index)))


def generate_scenes(config: SceneConfig, split: str = "train") -> dict[str, np.ndarray]:
    """Render ``config.num_scenes`` scenes of ``split`` into stacked arrays (see :func:`load_scenes`)."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    scenes = [render_scene(scene_rng(config.seed, split, i), config) for i in range(config.num_scenes)]
    return {
        "points": np.stack([s.points for s in scenes]).astype(np.float32),
        "labels": np.stack([s.labels for s in scenes]).astype(np.int8),
        "objects": np.stack([s.objects for s in scenes]).astype(np.int8),
        "pixel": np.stack([s.pixel for s in scenes]).astype(np.int32),
        "images": np.stack([s.image for s in scenes]),
        "superpixels": np.stack([s.superpixels for s in scenes]).astype(np.int16),
    }


def scene_arrays(
    config: SceneConfig, split: str = "train", cache_dir: str | os.PathLike | None = None
) -> dict[str, np.ndarray]:
    """The stacked arrays of a set: read from ``scenes-<key>.npz`` in the cache when there, else generated and
    written there atomically.

    Returns:
        ``points (S, N, 3)`` float32, ``labels (S, N)``, ``objects (S, N)``, ``pixel (S, N)``,
        ``images (S, H, W, 3)`` uint8, ``superpixels (S, H, W)``.
    """
    root = cache_root(cache_dir)
    path = root / f"scenes-{config.key(split)}.npz"
    if path.is_file():
        try:
            with np.load(path) as f:
                return {k: f[k] for k in f.files}
        except (OSError, ValueError, EOFError):
            pass  # a damaged cache file: make it again
    arrays = generate_scenes(config, split)
    root.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, fsync=False) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return arrays


class SceneDataset(torch.utils.data.Dataset):
    """Scenes as training samples: item ``i`` is a dict of tensors (see the module docstring)."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays["points"])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        a = self.arrays
        sp = torch.from_numpy(a["superpixels"][i].astype(np.int64))
        pixel = torch.from_numpy(a["pixel"][i].astype(np.int64))
        return {
            "points": torch.from_numpy(a["points"][i]),
            "labels": torch.from_numpy(a["labels"][i].astype(np.int64)),
            "objects": torch.from_numpy(a["objects"][i].astype(np.int64)),
            "pixel": pixel,
            "image": torch.from_numpy(np.ascontiguousarray(a["images"][i].transpose(2, 0, 1))),
            "superpixels": sp,
            "point_superpixel": torch.where(pixel >= 0, sp.reshape(-1)[pixel.clamp(min=0)], -1),
        }


def load_scenes(
    config: SceneConfig = SceneConfig(), split: str = "train", cache_dir: str | os.PathLike | None = None
) -> SceneDataset:
    """The scenes of ``split`` as a dataset of sample dicts (cached, see :func:`scene_arrays`)."""
    return SceneDataset(scene_arrays(config, split, cache_dir))


def scene_label(labels: np.ndarray) -> np.ndarray:
    """One label per scene for the scene-level probes: the primitive class with the most points (ground left
    out), as an index into :data:`PRIMITIVES`.

    Shapes:
        - labels: ``(S, N)`` classes per point; output: ``(S,)``
    """
    counts = np.stack([(labels == c).sum(1) for c in range(1, len(CLASSES))], 1)
    return counts.argmax(1)


def segmentation_miou(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    """Mean intersection over union of per-point predictions, over the classes present in ``target`` or
    ``pred`` (a class in neither is left out).

    Shapes:
        - pred, target: ``(P,)`` class indices in ``[0, num_classes)``
    """
    cm = torch.bincount(target.long() * num_classes + pred.long(), minlength=num_classes**2).reshape(
        num_classes, num_classes
    )
    inter = cm.diag().double()
    union = cm.sum(0).double() + cm.sum(1).double() - inter
    present = union > 0
    return float((inter[present] / union[present]).mean())


def fit_linear(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int, steps: int = 60
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A softmax classifier (weights and bias) fitted with L-BFGS on standardised features (weight decay
    1e-4); returns ``features -> predicted classes``.

    Shapes:
        - features: ``(P, D)``; labels: ``(P,)``
    """
    mean, std = features.mean(0), features.std(0).clamp(min=1e-6)
    x = (features - mean) / std
    lin = torch.nn.Linear(x.shape[1], num_classes).double()
    torch.nn.init.zeros_(lin.weight)  # a convex problem: start at zero, draw nothing from the global generator
    torch.nn.init.zeros_(lin.bias)
    x = x.double()
    opt = torch.optim.LBFGS(lin.parameters(), lr=1.0, max_iter=steps, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(x), labels) + 1e-4 * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return lambda f: lin(((f - mean) / std).double()).argmax(1)


class SegmentationProbe:
    """The ``seg_miou`` extra probe: a linear per-point classifier of :data:`CLASSES` fitted on the frozen
    point features of the probe-train scenes, scored by mIoU on the probe-test scenes.

    Rows with a network that has ``point_features`` (the pretrained and untrained point-wise encoders) use its
    per-point features; the ``raw_input`` row (``backbone=None``) uses each point's normalised ``xyz`` and
    height above the scene's lowest point; other backbones give ``None``.

    Args:
        train, test: scene datasets.
        points_per_scene: points of each train scene the classifier fits on (a random subset; all test points
            are scored).
        batch_size: scenes per forward pass.
    """

    def __init__(self, train: SceneDataset, test: SceneDataset, points_per_scene: int = 256, batch_size: int = 16):
        self.train, self.test = train, test
        self.points_per_scene, self.batch_size = points_per_scene, batch_size

    def features(self, data: SceneDataset, backbone: Any, device: Any) -> torch.Tensor:
        """Per-point features ``(S, N, D)`` of every scene of ``data``."""
        pts = torch.from_numpy(data.arrays["points"])
        if backbone is None:
            height = pts[..., 2:] - pts[..., 2:].min(1, keepdim=True).values
            return torch.cat([pts, height], -1)
        was_training = backbone.training
        backbone.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(pts), self.batch_size):
                out.append(backbone.point_features(pts[i : i + self.batch_size].to(device)).float().cpu())
        backbone.train(was_training)
        return torch.cat(out)

    def score(self, backbone: Any, device: Any = "cpu") -> float:
        """The probe's mIoU for ``backbone`` (``None``: the raw-coordinate baseline)."""
        f_train = self.features(self.train, backbone, device)
        y_train = torch.from_numpy(self.train.arrays["labels"].astype(np.int64))
        g = torch.Generator().manual_seed(0)
        s, n = y_train.shape
        k = min(self.points_per_scene, n)
        idx = torch.stack([torch.randperm(n, generator=g)[:k] for _ in range(s)])
        x = f_train.gather(1, idx[..., None].expand(-1, -1, f_train.shape[-1])).reshape(s * k, -1)
        y = y_train.gather(1, idx).reshape(-1)
        predict = fit_linear(x, y, len(CLASSES))
        f_test = self.features(self.test, backbone, device)
        y_test = torch.from_numpy(self.test.arrays["labels"].astype(np.int64)).reshape(-1)
        pred = predict(f_test.reshape(-1, f_test.shape[-1]))
        return segmentation_miou(pred, y_test, len(CLASSES))

    def __call__(self, row: str, embed: Any, device: Any, backbone: Any) -> float | None:
        if backbone is None:
            return self.score(None) if row == "raw_input" else None
        if not hasattr(backbone, "point_features"):
            return None
        return self.score(backbone, device)


@dataclass(frozen=True)
class SceneDataConfig:
    """Settings of the scene data when no other data configuration is given (see :func:`load_scene_data`).

    Args:
        num_points: lidar points per scene.
        train_scenes, probe_train_scenes, probe_test_scenes: scenes per split.
        seed: seeds every split.
        cache_dir: the cache folder (``None``: ``~/.cache/selfsup/pointcloud``).
    """

    num_points: int = 1024
    train_scenes: int = 1000
    probe_train_scenes: int = 150
    probe_test_scenes: int = 75
    seed: int = 0
    cache_dir: str | None = None


def load_scene_data(cfg: Any = None) -> DataBundle:
    """The scene data as a :class:`~ssl_core.data.DataBundle` (``data.path=scenes``).

    ``cfg`` is any data configuration; its ``num_points``, ``seed``, ``cache_dir``, ``train_scenes``,
    ``probe_train_scenes`` and ``probe_test_scenes`` are read when it has them (else :class:`SceneDataConfig`'s
    defaults).

    - ``train``: :class:`SceneDataset` of sample dicts (SLidR's pretext reads them).
    - ``probe_train`` / ``probe_test``: the scene clouds ``(N, 3)`` labelled with their majority primitive
      (:func:`scene_label`) for the scene-level kNN / linear probes.
    - ``extra_probes["seg_miou"]``: :class:`SegmentationProbe` (the per-point semantic segmentation mIoU).
    - ``raw_features``: the D2 shape distribution of each scene cloud (:func:`~ssl_pointcloud.descriptors.d2_histogram`;
      the raw-input row's ``seg_miou`` uses ``xyz`` and height per point).
    """
    defaults = SceneDataConfig()

    def get(name: str) -> Any:
        value = getattr(cfg, name, None)
        return getattr(defaults, name) if value is None else value

    num_points, seed, cache_dir = int(get("num_points")), int(get("seed")), get("cache_dir")
    splits = {}
    for split, n in (
        ("train", get("train_scenes")),
        ("probe_train", get("probe_train_scenes")),
        ("probe_test", get("probe_test_scenes")),
    ):
        splits[split] = load_scenes(SceneConfig(num_scenes=int(n), num_points=num_points, seed=seed), split, cache_dir)

    def labelled(data: SceneDataset) -> LabeledSplit:
        pts = torch.from_numpy(data.arrays["points"])
        labels = torch.from_numpy(scene_label(data.arrays["labels"]))
        return LabeledSplit(list(pts), labels, list(PRIMITIVES))

    probe = SegmentationProbe(splits["probe_train"], splits["probe_test"])
    return DataBundle(
        train=splits["train"],
        info=PointInfo(num_points=num_points),
        description=(
            f"rendered scenes (camera image + lidar cloud of {num_points} points, SLIC superpixels): "
            f"{len(splits['train'])} to pretrain, {len(splits['probe_train'])}/{len(splits['probe_test'])} to probe "
            "(scene label: majority primitive; seg_miou: per-point classes " + ", ".join(CLASSES) + ")"
        ),
        probe_train=labelled(splits["probe_train"]),
        probe_test=labelled(splits["probe_test"]),
        raw_features=d2_histogram,
        extra_probes={"seg_miou": probe},
    )

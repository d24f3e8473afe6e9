"""Labelled point clouds generated from open3d's mesh primitives: the default pretraining and probe data.

Each cloud is one of :data:`SHAPES` (12 classes), made in three steps:

1. :func:`random_mesh`: the class's primitive (open3d ``TriangleMesh.create_*``, or a union of them) in a
   canonical pose about the origin, midpoint-subdivided until it has at least ``MIN_TRIANGLES`` triangles (so
   that the vertex deformations below bend its faces instead of only moving its corners), then deformed:
   a taper (``x, y *= 1 + a z``), a twist about ``z`` (angle ``b z``), a bend (``x += c z^2``), a random
   anisotropic scale (each axis ``exp(U(-s, s))``), and a random rotation: about the vertical ``z`` axis by
   default (``rotation="z"``: every shape stands upright, as ModelNet40's aligned models and a gravity-aligned
   scanner see them), or uniform over SO(3) (``rotation="so3"``: the harder setting, where only
   rotation-invariant features or heavy rotation augmentation recognise a class).
2. :func:`scan`: with ``partial=True`` (the default) a **partial view**: a pinhole sensor at a random
   direction and distance looks at the object's centre; a grid of rays (its resolution is drawn per scan,
   which varies the density) is cast with ``open3d.t.geometry.RaycastingScene``; the hits are the points,
   with Gaussian depth noise along each ray plus a small isotropic jitter. With ``partial=False``: points
   sampled uniformly on the whole surface (:func:`sample_surface`, open3d's ``sample_points_uniformly`` drawn
   from the seeded generator) plus the same isotropic jitter.
3. Resampling to exactly ``num_points`` (so the point count never tells the class): too many hits: a
   **random subset without replacement** (FPS would cost ~10 ms per cloud in NumPy and would even out the
   sensor's density, which is part of the data); too few: every hit once plus random repeats (random choice
   with replacement for the rest). Then the cloud is centred on its mean and scaled into the unit sphere
   (its farthest point at distance 1).

Everything is drawn from a NumPy generator; :func:`generate_shapes` gives sample ``i`` of class ``c`` its own
generator seeded with ``SeedSequence(seed, spawn_key=(c, i))``, so a set does not depend on how it is
generated and sets of different ``seed`` are disjoint draws (the pretraining set and the two probe splits use
different seeds, see :mod:`ssl_pointcloud.data.load`).
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from ssl_core.errors import ConfigError

SHAPES = (
    "box",
    "sphere",
    "cylinder",
    "cone",
    "pyramid",
    "torus",
    "arrow",
    "octahedron",
    "tetrahedron",
    "mobius",
    "capsule",
    "jack",
)
MIN_TRIANGLES = 300  # subdivide primitives to at least this many triangles before deforming them
SCALE = 0.2  # anisotropic scale: each axis exp(U(-SCALE, SCALE))
TAPER = 0.3  # x, y *= 1 + a z, a ~ U(-TAPER, TAPER)
TWIST = 0.5  # rotation about z by b z radians, b ~ U(-TWIST, TWIST)
BEND = 0.3  # x += c z^2, c ~ U(-BEND, BEND)
SENSOR_DISTANCE = (1.8, 3.5)  # of the sensor from the object's centre, in object radii
SENSOR_PIXELS = (40, 72)  # rays per side of the sensor's grid, drawn per scan
DEPTH_NOISE = (0.002, 0.01)  # std of the noise along each ray, in object radii, drawn per scan
JITTER = 0.003  # std of the isotropic noise, in object radii
ROTATIONS = ("z", "so3")
VERSION = 1  # of the generator; with the code digest part of the cache key


def _o3d():
    import open3d as o3d

    return o3d


def _centred(mesh):
    """Translate ``mesh`` so that its bounding box is centred on the origin."""
    mesh.translate(-mesh.get_axis_aligned_bounding_box().get_center())
    return mesh


def canonical_mesh(name: str):
    """The undeformed primitive of class ``name`` (about unit size, centred, main axis ``z``), subdivided.

    Raises:
        ConfigError: ``name`` is not one of :data:`SHAPES`.
    """
    tm = _o3d().geometry.TriangleMesh
    if name == "box":
        mesh = tm.create_box(1.0, 1.0, 1.0)
    elif name == "sphere":
        mesh = tm.create_sphere(0.5, resolution=12)
    elif name == "cylinder":
        mesh = tm.create_cylinder(0.35, 1.0, resolution=24, split=6)
    elif name == "cone":
        mesh = tm.create_cone(0.45, 1.0, resolution=24, split=6)
    elif name == "pyramid":
        mesh = tm.create_cone(0.55, 0.8, resolution=4, split=1)
    elif name == "torus":
        mesh = tm.create_torus(0.45, 0.15, radial_resolution=32, tubular_resolution=12)
    elif name == "arrow":
        mesh = tm.create_arrow(0.09, 0.2, 0.65, 0.35, resolution=16, cylinder_split=6, cone_split=2)
    elif name == "octahedron":
        mesh = tm.create_octahedron(0.6)
    elif name == "tetrahedron":
        mesh = tm.create_tetrahedron(0.6)
    elif name == "mobius":
        mesh = tm.create_mobius(length_split=60, width_split=8, twists=1, radius=0.45, flatness=1.0, width=0.5)
    elif name == "capsule":
        mesh = tm.create_sphere(0.25, resolution=12)
        v = np.asarray(mesh.vertices)
        v[:, 2] += np.sign(v[:, 2]) * 0.3
        mesh.vertices = _o3d().utility.Vector3dVector(v)
    elif name == "jack":
        mesh = tm()
        for size in ((1.0, 0.22, 0.22), (0.22, 1.0, 0.22), (0.22, 0.22, 1.0)):
            mesh += _centred(tm.create_box(*size))
    else:
        raise ConfigError(f"unknown shape {name!r}; the shapes are {', '.join(SHAPES)}")
    mesh = _centred(mesh)
    while len(mesh.triangles) < MIN_TRIANGLES:
        mesh = mesh.subdivide_midpoint(1)
    return mesh


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation matrix drawn uniformly from SO(3): a normalised Gaussian quaternion drawn from ``rng``
    (:func:`ssl_pointcloud.transforms.quaternion_to_matrix`).

    Shapes:
        - output: ``(3, 3)``, orthonormal with determinant +1
    """
    from ssl_pointcloud.transforms.augment import quaternion_to_matrix

    q = rng.standard_normal(4)
    return quaternion_to_matrix(torch.from_numpy(q / np.linalg.norm(q))).numpy()


def rotation_about_z(rng: np.random.Generator) -> np.ndarray:
    """A rotation about the ``z`` axis by a uniform angle in ``[0, 2 pi)``.

    Shapes:
        - output: ``(3, 3)``
    """
    c, s = np.cos(a := rng.uniform(0.0, 2 * np.pi)), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def deform(vertices: np.ndarray, rng: np.random.Generator, rotation: str = "z") -> np.ndarray:
    """Taper, twist, bend, scale anisotropically and rotate ``vertices`` (see the module docstring; ``rotation``:
    ``"z"`` or ``"so3"``).

    Shapes:
        - vertices: ``(V, 3)``; output: ``(V, 3)``
    """
    v = vertices.copy()
    a, b, c = rng.uniform(-TAPER, TAPER), rng.uniform(-TWIST, TWIST), rng.uniform(-BEND, BEND)
    z = v[:, 2]
    v[:, :2] *= (1 + a * z)[:, None]
    cos, sin = np.cos(b * z), np.sin(b * z)
    v[:, 0], v[:, 1] = cos * v[:, 0] - sin * v[:, 1], sin * v[:, 0] + cos * v[:, 1]
    v[:, 0] += c * z**2
    v *= np.exp(rng.uniform(-SCALE, SCALE, 3))
    if rotation not in ROTATIONS:
        raise ConfigError(f"rotation must be one of {', '.join(ROTATIONS)}, got {rotation!r}")
    return v @ (rotation_about_z(rng) if rotation == "z" else random_rotation(rng)).T


def random_mesh(name: str, rng: np.random.Generator, rotation: str = "z"):
    """A deformed, scaled and rotated mesh of class ``name`` (see the module docstring).

    Args:
        name: one of :data:`SHAPES`.
        rng: the draws.
        rotation: ``"z"`` (upright, a random angle about the vertical axis) or ``"so3"`` (uniform).

    Returns:
        an ``open3d.geometry.TriangleMesh`` centred near the origin.
    """
    mesh = canonical_mesh(name)
    mesh.vertices = _o3d().utility.Vector3dVector(deform(np.asarray(mesh.vertices), rng, rotation))
    return mesh


def normalize(points: np.ndarray, source: str = "cloud") -> np.ndarray:
    """Centre ``points`` on their mean and scale them into the unit sphere (the farthest point at distance 1).

    Degenerate clouds (collinear, planar, duplicated points) are normalised like any other; a cloud with no
    extent (all points equal, or a single point) cannot be scaled and is refused.

    Raises:
        DataError: the cloud is empty or all its points coincide (naming ``source``).

    Shapes:
        - points: ``(N, 3)``; output: ``(N, 3)`` in the dtype given
    """
    from ssl_core.errors import DataError

    if len(points) == 0:
        raise DataError(f"{source} holds no points")
    centred = points - points.mean(0, dtype=np.float64).astype(points.dtype)
    radius = float(np.sqrt((centred.astype(np.float64) ** 2).sum(1).max()))
    if not radius > 1e-12:
        raise DataError(f"{source}: all its {len(points)} points coincide (zero extent), so it cannot be scaled")
    return (centred / radius).astype(points.dtype)


def resample(points: np.ndarray, num_points: int, rng: np.random.Generator) -> np.ndarray:
    """Exactly ``num_points`` of ``points``: a random subset without replacement when there are more; all of them
    plus random repeats (drawn with replacement) when there are fewer.

    Shapes:
        - points: ``(M, 3)`` with ``M >= 1``; output: ``(num_points, 3)``
    """
    m = len(points)
    if m >= num_points:
        return points[rng.choice(m, num_points, replace=False)]
    extra = rng.integers(0, m, num_points - m)
    return points[rng.permutation(np.concatenate([np.arange(m), extra]))]


def sample_surface(vertices: np.ndarray, triangles: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points drawn uniformly on the surface of a triangle mesh: a triangle drawn with probability
    proportional to its area, then a uniform point in it (the square-root barycentric rule). What open3d's
    ``sample_points_uniformly`` does, but drawn from ``rng`` (open3d's cannot be seeded per call).

    Raises:
        DataError: the mesh has no triangle of positive area.

    Shapes:
        - vertices: ``(V, 3)``; triangles: ``(T, 3)`` int; output: ``(n, 3)`` float64
    """
    from ssl_core.errors import DataError

    tri = vertices[np.asarray(triangles, dtype=np.int64)] if len(triangles) else np.zeros((0, 3, 3))
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    total = float(area.sum())
    if not total > 0:
        raise DataError("the mesh has no triangle of positive area to sample points on")
    pick = rng.choice(len(tri), n, p=area / total)
    r1, r2 = np.sqrt(rng.random((n, 1))), rng.random((n, 1))
    t = tri[pick]
    return (1 - r1) * t[:, 0] + r1 * (1 - r2) * t[:, 1] + r1 * r2 * t[:, 2]


def _raycast(mesh, rng: np.random.Generator) -> np.ndarray:
    """The noisy hits of one pinhole sensor at a random position (see the module docstring)."""
    o3d = _o3d()
    vertices = np.asarray(mesh.vertices)
    centre = vertices.mean(0)
    radius = float(np.linalg.norm(vertices - centre, axis=1).max())
    direction = rng.standard_normal(3)
    direction /= np.linalg.norm(direction)
    distance = rng.uniform(*SENSOR_DISTANCE) * radius
    eye = centre + distance * direction
    up = np.cross(direction, rng.standard_normal(3))  # any vector orthogonal to the viewing direction
    up /= np.linalg.norm(up)
    fov = 2 * np.degrees(np.arcsin(min(radius / distance, 0.99))) * 1.05  # the whole bounding sphere in view
    px = int(rng.integers(SENSOR_PIXELS[0], SENSOR_PIXELS[1] + 1))
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(mesh))
    rays = o3d.t.geometry.RaycastingScene.create_rays_pinhole(
        fov_deg=float(fov),
        center=o3d.core.Tensor(centre, o3d.core.float32),
        eye=o3d.core.Tensor(eye, o3d.core.float32),
        up=o3d.core.Tensor(up, o3d.core.float32),
        width_px=px,
        height_px=px,
    )
    t_hit = scene.cast_rays(rays)["t_hit"].numpy().reshape(-1)
    rays = rays.numpy().reshape(-1, 6).astype(np.float64)
    hit = np.isfinite(t_hit)
    origin, d = rays[hit, :3], rays[hit, 3:]
    d_unit = d / np.linalg.norm(d, axis=1, keepdims=True)
    points = origin + t_hit[hit, None] * d
    points += d_unit * rng.normal(0.0, rng.uniform(*DEPTH_NOISE) * radius, (len(points), 1))
    return points


def scan(mesh, rng: np.random.Generator, num_points: int = 1024, partial: bool = True) -> np.ndarray:
    """A cloud of exactly ``num_points`` points of ``mesh``: a ray-cast partial view (``partial=True``) or a
    uniform sample of the whole surface, with sensor noise, resampled, centred and scaled into the unit sphere
    (see the module docstring).

    Args:
        mesh: an ``open3d.geometry.TriangleMesh`` with faces.
        rng: the draws.
        num_points: points of the cloud.
        partial: one partial view (``True``) or the whole surface.

    Shapes:
        - output: ``(num_points, 3)`` float32
    """
    if num_points < 1:
        raise ConfigError(f"num_points must be positive, got {num_points}")
    vertices = np.asarray(mesh.vertices)
    radius = float(np.linalg.norm(vertices - vertices.mean(0), axis=1).max())
    points = np.zeros((0, 3))
    if partial:
        for _ in range(4):  # a view that misses the object (never seen so far) is drawn again
            points = _raycast(mesh, rng)
            if len(points) >= 3:
                break
    if len(points) < 3:
        points = sample_surface(vertices, np.asarray(mesh.triangles), num_points, rng)
    points = resample(points, num_points, rng)
    points = points + rng.normal(0.0, JITTER * radius, points.shape)
    return normalize(points.astype(np.float32))


def generate_shapes(
    n_per_class: int,
    seed: int = 0,
    num_points: int = 1024,
    partial: bool = True,
    shapes: tuple[str, ...] = SHAPES,
    rotation: str = "z",
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``n_per_class`` clouds of every class of ``shapes``, class-major, rotated as ``rotation`` says (``"z"``
    or ``"so3"``, see :func:`random_mesh`).

    Sample ``i`` of class ``c`` (its index in ``shapes``) is drawn from ``SeedSequence(seed, spawn_key=(c, i))``
    alone: sets of different ``seed`` are independent draws, and a smaller set is a prefix of each class of a
    larger one.

    Returns:
        ``(points, labels, class_names)``.

    Shapes:
        - points: ``(len(shapes) * n_per_class, num_points, 3)`` float32; labels: ``(len(shapes) * n_per_class,)``
          int64
    """
    if n_per_class < 1:
        raise ConfigError(f"n_per_class must be positive, got {n_per_class}")
    for name in shapes:
        if name not in SHAPES:
            raise ConfigError(f"unknown shape {name!r}; the shapes are {', '.join(SHAPES)}")
    points = np.empty((len(shapes) * n_per_class, num_points, 3), np.float32)
    labels = np.repeat(np.arange(len(shapes), dtype=np.int64), n_per_class)
    for c, name in enumerate(shapes):
        for i in range(n_per_class):
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(c, i)))
            points[c * n_per_class + i] = scan(random_mesh(name, rng, rotation), rng, num_points, partial)
    return points, labels, list(shapes)


@functools.cache
def generator_digest() -> str:
    """A digest of this module's code and open3d's version, part of the cache key: a changed generator (or ray
    caster) never reuses clouds cached by another version."""
    import open3d as o3d

    h = hashlib.sha1(Path(__file__).read_bytes())
    h.update(o3d.__version__.encode())
    return h.hexdigest()[:16]


def load_shapes(
    n_per_class: int, seed: int, num_points: int, partial: bool, cache: Path | None, rotation: str = "z"
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """:func:`generate_shapes` through a cache: read from ``cache/shapes-<key>.npz`` when there, else generated
    and written there atomically (:func:`ssl_core.io.atomic_write`); the key digests the arguments,
    :data:`VERSION` and :func:`generator_digest`. ``cache=None``: generated every time."""
    settings = {"n": n_per_class, "seed": seed, "num_points": num_points, "partial": partial, "shapes": SHAPES}
    settings["rotation"] = rotation
    settings.update(version=VERSION, code=generator_digest())
    key = hashlib.sha1(json.dumps(settings).encode()).hexdigest()[:16]
    path = None if cache is None else cache / f"shapes-{key}.npz"
    if path is not None and path.exists():
        with np.load(path) as z:
            return z["points"], z["labels"], list(SHAPES)
    points, labels, names = generate_shapes(n_per_class, seed, num_points, partial, rotation=rotation)
    if path is not None:
        from ssl_core.io import atomic_write

        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, fsync=False) as tmp, open(tmp, "wb") as f:
            np.savez(f, points=points, labels=labels)
    return points, labels, names

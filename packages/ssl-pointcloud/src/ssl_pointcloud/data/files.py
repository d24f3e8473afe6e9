"""Reading one point-cloud or mesh file into a cloud of exactly ``num_points`` points in the unit sphere.

Formats (by extension, case-insensitive):

- point clouds, read by open3d's ``read_point_cloud``: ``.pcd``, ``.xyz``, ``.xyzn``, ``.xyzrgb``, ``.pts``
  (open3d's PTS: the first line is the number of points), and ``.ply`` without faces;
- meshes, read by open3d's ``read_triangle_mesh``: ``.off``, ``.obj``, ``.stl``, ``.ply`` with faces; points
  are sampled uniformly on the surface (:func:`~ssl_pointcloud.data.shapes.sample_surface`, open3d's
  ``sample_points_uniformly`` drawn from a seeded generator), ``oversample * num_points`` of them for FPS;
- arrays: ``.npy`` (``(M, 3+)``), ``.txt`` / ``.csv`` (``(M, 3+)`` numbers separated by commas or white space,
  as ModelNet40's resampled ``x,y,z,nx,ny,nz`` files); the first three columns are xyz.

Policy: a cloud of more than ``num_points`` points is down-sampled by farthest point sampling
(:func:`ssl_core.kernels.farthest_point_sampling`, from point 0) or uniformly at random without replacement
(``sampling``); a smaller one keeps every point and repeats random ones (with replacement) up to
``num_points``. Then it is centred on its mean and scaled into the unit sphere
(:func:`~ssl_pointcloud.data.shapes.normalize`).

Bad input:

- a file that cannot be read, is of another format than its extension says, or holds no points:
  :class:`UnreadableCloud` (a :class:`DataError` naming the file); folders skip such files and count them;
- NaN or infinite coordinates: :class:`DataError` from :func:`ssl_core.data.check_finite` (refused, not
  skipped: a broken export upstream should be fixed, not hidden);
- duplicate points are **kept** (they are part of the data; FPS never picks a duplicate before every distinct
  point is taken, random sampling may pick both);
- collinear and planar clouds are normalised like any other; a cloud whose points all coincide (zero extent)
  cannot be scaled: :class:`UnreadableCloud`;
- a mesh without faces (an ``.off`` / ``.obj`` / ``.ply`` of vertices only): its vertices are the cloud.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ssl_core.data import check_finite
from ssl_core.errors import ConfigError, DataError
from ssl_pointcloud.data.shapes import normalize, resample, sample_surface

POINT_EXTENSIONS = (".pcd", ".xyz", ".xyzn", ".xyzrgb", ".pts")
MESH_EXTENSIONS = (".off", ".obj", ".stl")
ARRAY_EXTENSIONS = (".npy", ".txt", ".csv")
CLOUD_EXTENSIONS = (*POINT_EXTENSIONS, *MESH_EXTENSIONS, ".ply", *ARRAY_EXTENSIONS)
SAMPLINGS = ("fps", "random")


class UnreadableCloud(DataError):
    """A file that holds no usable cloud (unreadable, of another format, empty, or of zero extent)."""


def _quiet():
    import open3d as o3d

    return o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error)


def _off_vertices(path: Path) -> np.ndarray:
    """The vertices of an OFF file whose face count is 0 (open3d refuses such files)."""
    words = []
    for line in path.read_text(errors="replace").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            words.extend(line.split())
    if not words or not words[0].endswith("OFF"):
        raise UnreadableCloud(f"{path}: not an OFF file (its first word is not OFF)")
    rest = words[1:] if words[0] == "OFF" else None
    if rest is None:  # COFF / NOFF ...: let open3d's error stand
        raise UnreadableCloud(f"{path}: open3d could not read this {words[0]} file")
    try:
        n = int(rest[0])
        return np.asarray(rest[3 : 3 + 3 * n], dtype=np.float64).reshape(n, 3)
    except (ValueError, IndexError) as e:
        raise UnreadableCloud(f"{path}: not a readable OFF file ({e})") from None


def _read_array(path: Path) -> np.ndarray:
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            first = next((ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()), "")
            arr = np.loadtxt(path, delimiter="," if "," in first else None, ndmin=2)
    except (ValueError, OSError, EOFError) as e:
        raise UnreadableCloud(f"{path}: not a readable array of points ({str(e).splitlines()[0]})") from None
    if arr.ndim != 2 or arr.shape[1] < 3 or not np.issubdtype(arr.dtype, np.number):
        raise UnreadableCloud(f"{path}: expected an (N, 3+) array of numbers, got shape {arr.shape} ({arr.dtype})")
    return arr[:, :3].astype(np.float64)


def read_points(path: str | Path, num_points: int, rng: np.random.Generator, oversample: int = 4) -> np.ndarray:
    """The raw points of a file (before down-sampling and normalisation): a point cloud's points, an array's
    first three columns, or ``oversample * num_points`` points sampled on a mesh's surface (its vertices when it
    has no faces).

    Raises:
        UnreadableCloud: the file cannot be read as its extension says, or holds no points.
        DataError: the coordinates hold NaN or infinity.

    Shapes:
        - output: ``(M, 3)`` float64
    """
    import open3d as o3d

    path = Path(path)
    ext = path.suffix.lower()
    if ext not in CLOUD_EXTENSIONS:
        raise UnreadableCloud(f"{path}: unsupported extension {ext!r}; supported: {', '.join(CLOUD_EXTENSIONS)}")
    if ext in ARRAY_EXTENSIONS:
        points = _read_array(path)
    elif ext in POINT_EXTENSIONS:
        with _quiet():
            points = np.asarray(o3d.io.read_point_cloud(str(path), format=ext[1:]).points)
    else:
        with _quiet():
            mesh = o3d.io.read_triangle_mesh(str(path))
        vertices, triangles = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
        if len(vertices) == 0 and ext == ".ply":
            with _quiet():
                vertices = np.asarray(o3d.io.read_point_cloud(str(path)).points)
        elif len(vertices) == 0 and ext == ".off":
            vertices = _off_vertices(path)
        check_finite(vertices, str(path))
        if len(triangles):
            try:
                points = sample_surface(vertices, triangles, oversample * num_points, rng)
            except DataError:  # every face degenerate: the vertices are the cloud
                points = vertices
        else:
            points = vertices
    if len(points) == 0:
        raise UnreadableCloud(f"{path}: no points read (empty, corrupt, or not a {ext[1:].upper()} file)")
    check_finite(points, str(path))
    return points


def downsample(points: np.ndarray, num_points: int, sampling: str, rng: np.random.Generator) -> np.ndarray:
    """Exactly ``num_points`` of ``points``: farthest point sampling (``"fps"``, from point 0) or a random subset
    (``"random"``) of a larger cloud; a smaller one keeps every point plus random repeats.

    Shapes:
        - points: ``(M, 3)``; output: ``(num_points, 3)``
    """
    if sampling not in SAMPLINGS:
        raise ConfigError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {sampling!r}")
    if len(points) > num_points and sampling == "fps":
        from ssl_core.kernels import farthest_point_sampling

        idx = farthest_point_sampling(torch.from_numpy(np.ascontiguousarray(points))[None], num_points)[0]
        return points[idx.numpy()]
    return resample(points, num_points, rng)


def load_cloud(
    path: str | Path, num_points: int = 1024, sampling: str = "fps", seed: int = 0, oversample: int = 4
) -> np.ndarray:
    """One file as a cloud of exactly ``num_points`` points, centred and scaled into the unit sphere (see the
    module docstring for the formats and the handling of bad input).

    Args:
        path: the file.
        num_points: points of the cloud.
        sampling: ``"fps"`` or ``"random"`` down-sampling of larger clouds.
        seed: seeds the surface sampling, random down-sampling and repeats.
        oversample: surface points sampled on a mesh per output point (before the down-sampling).

    Raises:
        UnreadableCloud: see :func:`read_points`, or all points coincide.
        DataError: NaN or infinite coordinates.

    Shapes:
        - output: ``(num_points, 3)`` float32
    """
    rng = np.random.default_rng(seed)
    points = read_points(path, num_points, rng, oversample if sampling == "fps" else 1)
    points = downsample(points, num_points, sampling, rng)
    try:
        return normalize(points, str(path)).astype(np.float32)
    except DataError as e:
        raise UnreadableCloud(str(e)) from None

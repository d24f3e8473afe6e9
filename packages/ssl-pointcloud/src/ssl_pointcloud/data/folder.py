"""User folders of point clouds and meshes (``--data PATH``), and the CGAL demo meshes (``path="cgal"``).

Layouts of ``PATH`` (files of :data:`~ssl_pointcloud.data.files.CLOUD_EXTENSIONS`, found recursively; hidden
files and other extensions are ignored):

- ModelNet40-style ``<PATH>/<class>/train/*`` and ``<PATH>/<class>/test/*``: labelled by class, split as given;
- ``<PATH>/<class>/*`` (anything below the class folder): labelled by class, split by
  :func:`ssl_core.data.stratified_split`;
- files directly in ``PATH``: unlabelled (pretraining only); a folder of such files alone has no probes.

Each file becomes one cloud (:func:`~ssl_pointcloud.data.files.load_cloud`). Files that cannot be read (corrupt,
of another format, empty, zero extent) are skipped and counted on one line; NaN or infinite coordinates are
refused (:class:`DataError` naming the file). The clouds are cached (keyed by the files, their sizes and
modification times, and the settings) under the cache folder.

The CGAL demo data (Debian 12's ``libcgal-demo`` 5.5.1 puts ``data.tar.gz`` in ``/usr/share/doc/libcgal-demo``,
a link to ``/usr/share/doc/libcgal-dev``: 139 OFF, 13 PLY and 2 STL meshes in ``data/meshes``, 17 XYZ and
PLY point sets in ``data/points_3``) is unlabelled: pretraining data only, it cannot be probed (the probes then
use the generated shapes).
"""

from __future__ import annotations

import hashlib
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ssl_core.data import stratified_split
from ssl_core.errors import DataError
from ssl_pointcloud.data.files import CLOUD_EXTENSIONS, UnreadableCloud, load_cloud

CGAL_DOC = Path("/usr/share/doc/libcgal-demo")  # Debian 12's libcgal-demo 5.5.1: a link to ../libcgal-dev
CGAL_ARCHIVES = ("data.tar.gz", "data.tar.xz")  # its data.tar.gz: data/meshes/*.off|ply|stl, data/points_3/*.xyz|ply
CGAL_MESHES = (".off", ".obj", ".ply", ".stl", ".xyz", ".pcd", ".pts")
CGAL_MAX_BYTES = 20_000_000  # larger meshes of the archives are left out (slow to read, few of them)


@dataclass
class CloudFolder:
    """The clouds of a folder.

    Args:
        points: every readable file's cloud.
        labels: class index of each cloud, ``-1`` for unlabelled files.
        classes: class names (sorted sub-folder names); empty when nothing is labelled.
        split: ``"train"`` / ``"test"`` of each cloud in the ModelNet40 layout, else ``None``.
        files: the files the clouds come from, relative to the folder.

    Shapes:
        - points: ``(M, num_points, 3)`` float32; labels: ``(M,)`` int64
    """

    points: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    split: list[str] | None
    files: list[str]

    def probe_split(self, test_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Indices ``(train, test)`` of the labelled clouds: the folders' ``train`` / ``test`` in the ModelNet40
        layout, else a class-stratified split; ``None`` without labels."""
        if not self.classes:
            return None
        if self.split is not None:
            lab = self.labels >= 0
            is_test = torch.tensor([s == "test" for s in self.split])
            return (lab & ~is_test).nonzero().squeeze(1), (lab & is_test).nonzero().squeeze(1)
        return stratified_split(self.labels, test_fraction, seed)


def cloud_files(root: Path) -> list[Path]:
    """The point-cloud, mesh and array files under ``root``, sorted, hidden ones left out."""
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in CLOUD_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def read_clouds(
    files: list[Path], root: Path, num_points: int, sampling: str, seed: int
) -> tuple[list[np.ndarray], list[Path]]:
    """Load ``files``; the unreadable ones are skipped and reported on one line (stderr)."""
    clouds, kept, skipped = [], [], []
    for i, p in enumerate(files):
        try:
            clouds.append(load_cloud(p, num_points, sampling, seed=seed + i))
            kept.append(p)
        except UnreadableCloud as e:
            skipped.append(f"{p.relative_to(root)} ({str(e).replace(str(p) + ': ', '')})")
    if skipped:
        print(
            f"note: skipped {len(skipped)} file{'s' if len(skipped) > 1 else ''} that "
            f"{'are' if len(skipped) > 1 else 'is'} not a readable point cloud or mesh: {', '.join(skipped)}",
            file=sys.stderr,
        )
    return clouds, kept


def _cache_path(cache: Path | None, what: str, files: list[Path], settings: str) -> Path | None:
    if cache is None:
        return None
    h = hashlib.sha1(f"{what} {settings}".encode())
    for p in files:
        st = p.stat()
        h.update(f"{p} {st.st_size} {st.st_mtime_ns}".encode())
    return cache / f"{what}-{h.hexdigest()[:16]}.npz"


def _write_npz(path: Path, **arrays) -> None:
    from ssl_core.io import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, fsync=False) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def load_folder(
    root: str | Path, num_points: int = 1024, sampling: str = "fps", seed: int = 0, cache: Path | None = None
) -> CloudFolder:
    """Read a user folder (see the module docstring).

    Raises:
        DataError: the folder is missing, holds no cloud files, or none is readable; its labelled files form a
            single class; a file holds NaN or infinite coordinates.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"data path not found or not a folder: {root}")
    files = cloud_files(root)
    if not files:
        raise DataError(f"{root} holds no point-cloud, mesh or array files ({', '.join(CLOUD_EXTENSIONS)})")
    rel = [p.relative_to(root).parts for p in files]
    groups = [parts[0] if len(parts) > 1 else None for parts in rel]
    classes = sorted({g for g in groups if g is not None})
    if len(classes) == 1:
        raise DataError(
            f"{root} has a single class folder ({classes[0]}); probes need at least 2 classes: add a sub-folder per "
            "class, or move the files directly into the folder to pretrain without labels (no probes)"
        )
    modelnet = bool(classes) and all(
        g is None or (len(parts) > 2 and parts[1] in ("train", "test")) for g, parts in zip(groups, rel, strict=True)
    )
    path = _cache_path(cache, "folder", files, f"{root} {num_points} {sampling} {seed}")
    if path is not None and path.exists():
        with np.load(path) as z:
            kept = [root / f for f in z["files"]]
            points = z["points"]
    else:
        clouds, kept = read_clouds(files, root, num_points, sampling, seed)
        if not clouds:
            raise DataError(f"{root} holds no readable cloud: every one of its {len(files)} files was skipped")
        points = np.stack(clouds)
        if path is not None:
            _write_npz(path, points=points, files=np.array([str(p.relative_to(root)) for p in kept]))
    parts = [p.relative_to(root).parts for p in kept]
    groups = [pt[0] if len(pt) > 1 else None for pt in parts]
    classes = sorted({g for g in groups if g is not None})
    labels = torch.tensor([-1 if g is None else classes.index(g) for g in groups], dtype=torch.long)
    split = [pt[1] if len(pt) > 2 else "train" for pt in parts] if modelnet else None
    if len(classes) == 1:
        raise DataError(f"{root}: only the files of class {classes[0]} are readable; probes need at least 2 classes")
    return CloudFolder(torch.from_numpy(points), labels, classes, split, [str(Path(*pt)) for pt in parts])


def cgal_archives(doc: Path = CGAL_DOC) -> list[Path]:
    """The data archive of Debian's ``libcgal-demo`` found in ``doc`` (empty when the package is not installed)."""
    return [doc / name for name in CGAL_ARCHIVES if (doc / name).is_file()][:1]


def load_cgal(
    num_points: int = 1024,
    sampling: str = "fps",
    seed: int = 0,
    cache: Path | None = None,
    doc: Path = CGAL_DOC,
    views: int = 1,
) -> torch.Tensor:
    """The meshes and point sets of the CGAL demo data as unlabelled clouds (pretraining only: no classes).

    The members of ``CGAL_MESHES`` extensions (up to ``CGAL_MAX_BYTES``) of the data archive in ``doc`` are
    extracted to the cache folder once. With ``views=1`` they are read like a flat user folder (one cloud per
    file, unreadable ones skipped and counted); with ``views > 1`` every mesh with faces gives ``views`` ray-cast
    partial views of random rotations of it (:func:`~ssl_pointcloud.data.shapes.scan`), every point set one
    cloud; the clouds are cached.

    Raises:
        DataError: the archives are missing (with the command that installs them), or hold no readable mesh.

    Shapes:
        - output: ``(M, num_points, 3)`` float32
    """
    archives = cgal_archives(doc)
    if not archives:
        raise DataError(
            f"the CGAL demo meshes are not installed (no archive in {doc}): run `sudo apt-get install libcgal-demo`"
        )
    if cache is None:
        raise DataError("the CGAL meshes need a cache folder to extract them to")
    h = hashlib.sha1(" ".join(f"{a} {a.stat().st_size}" for a in archives).encode()).hexdigest()[:16]
    folder = cache / f"cgal-{h}"
    if not folder.is_dir():
        from ssl_core.io import atomic_write

        cache.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder, fsync=False) as tmp:
            tmp.mkdir()
            for i, archive in enumerate(archives):
                with tarfile.open(archive) as tar:
                    for m in tar.getmembers():
                        if m.isfile() and Path(m.name).suffix.lower() in CGAL_MESHES and m.size <= CGAL_MAX_BYTES:
                            src = tar.extractfile(m)
                            if src is not None:
                                name = f"{i}-" + m.name.strip("/").replace("/", "__")
                                (tmp / name).write_bytes(src.read())
    if not any(folder.iterdir()):
        raise DataError(f"the CGAL archive {archives[0]} holds no mesh or point set ({', '.join(CGAL_MESHES)})")
    if views <= 1:
        return load_folder(folder, num_points, sampling, seed, cache).points
    files = cloud_files(folder)
    path = _cache_path(cache, "cgal-views", files, f"{num_points} {sampling} {seed} {views}")
    if path is not None and path.exists():
        with np.load(path) as z:
            return torch.from_numpy(z["points"])
    clouds, point_sets = [], []
    for i, f in enumerate(files):
        found = _mesh_views(f, views, num_points, np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(i,))))
        clouds.extend(found)
        if not found:  # a point set, or a mesh without faces
            point_sets.append(f)
    more, _ = read_clouds(point_sets, folder, num_points, sampling, seed)
    points = np.stack(clouds + more)
    _write_npz(path, points=points)
    return torch.from_numpy(points)


MESH_SUFFIXES = (".off", ".obj", ".ply", ".stl")


def _read_mesh(path: Path):
    import open3d as o3d

    if path.suffix.lower() not in MESH_SUFFIXES:
        return None
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        mesh = o3d.io.read_triangle_mesh(str(path))
    v = np.asarray(mesh.vertices)
    if len(mesh.triangles) == 0 or not np.isfinite(v).all():
        return None
    return mesh


def _mesh_views(path: Path, views: int, num_points: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``views`` ray-cast partial views of the mesh in ``path`` (:func:`~ssl_pointcloud.data.shapes.scan`), each
    of it randomly rotated (uniform on SO(3)); no view for a file without faces, or a view that fails."""
    import open3d as o3d

    from ssl_pointcloud.data.shapes import random_rotation, scan

    mesh = _read_mesh(path)
    if mesh is None:
        return []
    vertices = np.asarray(mesh.vertices).copy()
    out = []
    for _ in range(views):
        mesh.vertices = o3d.utility.Vector3dVector(vertices @ random_rotation(rng).T)
        try:
            out.append(scan(mesh, rng, num_points, partial=True))
        except DataError:  # a degenerate mesh (zero extent)
            break
    return out

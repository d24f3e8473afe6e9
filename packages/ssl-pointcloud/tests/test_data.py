"""The data: generated shapes (determinism, exact point counts, unit sphere, the cache), file reading and its bad
input, user folders (layouts, corrupt files, one class, empty), the CGAL meshes, and load_data's bundle."""

import io
import tarfile

import numpy as np
import pytest
import torch

from ssl_core.errors import ConfigError, DataError
from ssl_pointcloud.data import DATASETS, PointDataConfig, load_data
from ssl_pointcloud.data.files import UnreadableCloud, load_cloud, read_points
from ssl_pointcloud.data.folder import CGAL_DOC, load_cgal, load_folder
from ssl_pointcloud.data.shapes import (
    SHAPES,
    generate_shapes,
    load_shapes,
    normalize,
    random_mesh,
    random_rotation,
    resample,
    sample_surface,
    scan,
)

N = 64


def _unit(points):
    p = np.asarray(points, dtype=np.float64)
    np.testing.assert_allclose(p.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(p, axis=1).max(), 1, atol=1e-5)


# ---- generated shapes ----


def test_generate_shapes_exact_count_unit_sphere_and_deterministic():
    pts, labels, names = generate_shapes(1, seed=5, num_points=N)
    assert names == list(SHAPES) and len(SHAPES) >= 10
    assert pts.shape == (len(SHAPES), N, 3) and pts.dtype == np.float32
    assert labels.dtype == np.int64 and labels.tolist() == list(range(len(SHAPES)))
    for p in pts:
        _unit(p)
    again, _, _ = generate_shapes(1, seed=5, num_points=N)
    assert np.array_equal(pts, again)
    other, _, _ = generate_shapes(1, seed=6, num_points=N)
    assert not np.allclose(pts, other)
    two, _, _ = generate_shapes(2, seed=5, num_points=N, shapes=SHAPES[:3])
    assert np.array_equal(two[::2], pts[:3])  # sample i of class c depends on (seed, c, i) alone


def test_scan_count_never_depends_on_hits():
    rng = np.random.default_rng(0)
    mesh = random_mesh("tetrahedron", rng)
    assert len(mesh.triangles) >= 300  # subdivided before the deformation
    for n in (16, 5000):  # far fewer and far more than the ray hits
        cloud = scan(mesh, rng, n, partial=True)
        assert cloud.shape == (n, 3) and cloud.dtype == np.float32
        _unit(cloud)
    full = scan(mesh, rng, 256, partial=False)
    assert full.shape == (256, 3)
    with pytest.raises(ConfigError, match="unknown shape"):
        random_mesh("teapot", rng)


def test_partial_view_sees_one_side():
    rng = np.random.default_rng(1)
    mesh = random_mesh("sphere", rng)
    # a partial view of a sphere is a cap: its points spread less around their mean than the whole surface's
    part = scan(mesh, rng, 512, partial=True)
    full = scan(mesh, rng, 512, partial=False)
    assert np.linalg.eigvalsh(np.cov(part.T)).min() < 0.5 * np.linalg.eigvalsh(np.cov(full.T)).min()


def test_helpers_against_references():
    rng = np.random.default_rng(0)
    r = random_rotation(rng)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.isclose(np.linalg.det(r), 1)
    # surface samples lie on the mesh, in proportion to the areas: a 1x1 and a 1x3 rectangle in z = 0
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [2, 0, 0], [3, 0, 0], [3, 3, 0], [2, 3, 0.0]])
    t = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    s = sample_surface(v, t, 20000, rng)
    assert np.all(s[:, 2] == 0) and np.all((s[:, 0] <= 1) | (s[:, 0] >= 2))
    assert abs((s[:, 0] <= 1).mean() - 0.25) < 0.02
    small = np.arange(30.0).reshape(10, 3)
    out = resample(small, 25, rng)
    assert out.shape == (25, 3) and {tuple(p) for p in out} == {tuple(p) for p in small}
    with pytest.raises(DataError, match="coincide"):
        normalize(np.ones((5, 3)))
    with pytest.raises(DataError, match="no points"):
        normalize(np.zeros((0, 3)))


def test_load_shapes_caches_atomically(tmp_path):
    a = load_shapes(1, 0, N, True, tmp_path)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].name.startswith("shapes-") and files[0].suffix == ".npz"
    mtime = files[0].stat().st_mtime_ns
    b = load_shapes(1, 0, N, True, tmp_path)
    assert files[0].stat().st_mtime_ns == mtime and np.array_equal(a[0], b[0]) and a[2] == b[2]
    load_shapes(1, 1, N, True, tmp_path)
    assert len(list(tmp_path.iterdir())) == 2  # another seed, another key; no temporaries left


# ---- files ----


def _write_mesh(path, mesh):
    import open3d as o3d

    assert o3d.io.write_triangle_mesh(str(path), mesh)


def test_formats(tmp_path):
    import open3d as o3d

    rng = np.random.default_rng(0)
    pts = rng.standard_normal((300, 3))
    np.save(tmp_path / "a.npy", np.concatenate([pts, rng.random((300, 3))], 1))  # extra columns ignored
    np.savetxt(tmp_path / "a.txt", pts, delimiter=",")
    np.savetxt(tmp_path / "b.txt", pts)
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    for ext in ("pcd", "ply", "xyz", "pts"):
        assert o3d.io.write_point_cloud(str(tmp_path / f"a.{ext}"), pcd)
    mesh = o3d.geometry.TriangleMesh.create_torus()
    mesh.compute_vertex_normals()
    for ext in ("off", "obj", "stl"):
        _write_mesh(tmp_path / f"m.{ext}", mesh)
    _write_mesh(tmp_path / "m.ply", mesh)
    ref = None
    for f in sorted(tmp_path.iterdir()):
        cloud = load_cloud(f, N, "fps", seed=0)
        assert cloud.shape == (N, 3) and cloud.dtype == np.float32, f
        _unit(cloud)
        if f.name == "a.npy":
            ref = cloud
        elif f.stem == "a" or f.stem == "b":
            np.testing.assert_allclose(cloud, ref, atol=1e-4, err_msg=f.name)  # same points, same FPS
    # points sampled on a mesh lie on it: open3d's torus has its tube (radius 0.5) around a circle of radius 1
    torus = read_points(tmp_path / "m.off", 512, rng)
    assert torus.shape == (4 * 512, 3)
    tube = np.hypot(np.linalg.norm(torus[:, :2], axis=1) - 1, torus[:, 2])
    assert np.abs(tube - 0.5).max() < 0.02  # the facets of a 30 x 20 mesh


def test_fps_matches_core_kernel(tmp_path):
    from ssl_core.kernels import farthest_point_sampling

    pts = np.random.default_rng(0).random((500, 3))
    np.save(tmp_path / "c.npy", pts)
    idx = farthest_point_sampling(torch.from_numpy(pts)[None], N)[0].numpy()
    np.testing.assert_allclose(load_cloud(tmp_path / "c.npy", N, "fps"), normalize(pts[idx]), atol=1e-6)
    rand = load_cloud(tmp_path / "c.npy", N, "random", seed=1)
    assert rand.shape == (N, 3) and not np.allclose(rand, load_cloud(tmp_path / "c.npy", N, "fps"))


def test_bad_files(tmp_path):
    np.save(tmp_path / "empty.npy", np.zeros((0, 3)))
    with pytest.raises(UnreadableCloud, match="empty.npy: no points"):
        load_cloud(tmp_path / "empty.npy")
    bad = np.random.default_rng(0).random((20, 3))
    bad[3, 1] = np.nan
    bad[4, 0] = np.inf
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(DataError, match=r"nan.npy holds 2 non-finite values \(1 NaN, 1 infinite\)"):
        load_cloud(tmp_path / "nan.npy")
    np.save(tmp_path / "same.npy", np.ones((50, 3)))
    with pytest.raises(UnreadableCloud, match="same.npy: all its .* points coincide"):
        load_cloud(tmp_path / "same.npy")
    np.save(tmp_path / "flat.npy", np.zeros((10, 2)))
    with pytest.raises(UnreadableCloud, match=r"flat.npy: expected an \(N, 3\+\) array"):
        load_cloud(tmp_path / "flat.npy")
    (tmp_path / "junk.pcd").write_text("this is not a point cloud\n")
    with pytest.raises(UnreadableCloud, match="junk.pcd: no points read"):
        load_cloud(tmp_path / "junk.pcd")
    (tmp_path / "junk.off").write_text("garbage\n")
    with pytest.raises(UnreadableCloud, match="junk.off"):
        load_cloud(tmp_path / "junk.off")
    (tmp_path / "cloud.txt").write_text("1 2 three\n")
    with pytest.raises(UnreadableCloud, match="cloud.txt: not a readable array"):
        load_cloud(tmp_path / "cloud.txt")
    with pytest.raises(UnreadableCloud, match="unsupported extension"):
        load_cloud(tmp_path / "x.docx")


def test_degenerate_but_valid_clouds(tmp_path):
    t = np.linspace(0, 1, 40)[:, None]
    np.save(tmp_path / "line.npy", t * np.array([[1.0, 2.0, 3.0]]))
    np.save(tmp_path / "plane.npy", np.random.default_rng(0).random((100, 3)) * [1, 1, 0])
    dup = np.random.default_rng(1).random((10, 3))
    np.save(tmp_path / "dup.npy", np.concatenate([dup, dup, dup]))
    for name in ("line", "plane", "dup"):
        c = load_cloud(tmp_path / f"{name}.npy", N, "fps")
        assert c.shape == (N, 3) and np.isfinite(c).all()
        _unit(c)
    line = load_cloud(tmp_path / "line.npy", N)
    assert np.linalg.matrix_rank(line - line.mean(0), tol=1e-5) == 1
    # duplicates are kept: the 10 distinct points all appear (FPS takes each once before any repeat)
    c = load_cloud(tmp_path / "dup.npy", N, "fps")
    assert len(np.unique(c.round(5), axis=0)) == 10
    # an OFF mesh without faces: its vertices are the cloud
    (tmp_path / "verts.off").write_text("OFF\n4 0 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n")
    v = load_cloud(tmp_path / "verts.off", 8)
    assert len(np.unique(v.round(5), axis=0)) == 4


# ---- folders ----


def _npy(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.random.default_rng(seed).standard_normal((100, 3)))


def test_folder_layouts(tmp_path, capsys):
    for c in ("chair", "lamp"):
        for i in range(5):
            _npy(tmp_path / "by_class" / c / f"{i}.npy", i)
        for split, n in (("train", 4), ("test", 2)):
            for i in range(n):
                _npy(tmp_path / "modelnet" / c / split / f"{c}_{i}.npy", i)
    (tmp_path / "by_class" / "lamp" / "broken.ply").write_text("not a ply")
    (tmp_path / "by_class" / ".hidden.npy").write_text("ignored")
    f = load_folder(tmp_path / "by_class", N)
    assert f.points.shape == (10, N, 3) and f.classes == ["chair", "lamp"] and f.split is None
    assert "skipped 1 file that is not a readable point cloud or mesh: lamp/broken.ply" in capsys.readouterr().err
    tr, te = f.probe_split(0.4, 0)
    assert len(tr) == 6 and len(te) == 4 and set(f.labels[te].tolist()) == {0, 1}
    m = load_folder(tmp_path / "modelnet", N)
    tr, te = m.probe_split(0.5, 0)
    assert len(tr) == 8 and len(te) == 4 and all(m.split[i] == "test" for i in te.tolist())
    bundle = load_data(PointDataConfig(path=str(tmp_path / "modelnet"), num_points=N, cache_dir=str(tmp_path / "c")))
    assert len(bundle.train) == 8 and len(bundle.probe_test.labels) == 4  # pretraining leaves the probe test out
    assert bundle.probe_train.class_names == ["chair", "lamp"]
    for i in range(3):
        _npy(tmp_path / "flat" / f"{i}.npy", i)
    flat = load_data(PointDataConfig(path=str(tmp_path / "flat"), num_points=N, cache_dir=str(tmp_path / "c")))
    assert flat.probe_train is None and not flat.extra_probes and flat.train.shape == (3, N, 3)


def test_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no point-cloud, mesh or array files"):
        load_folder(tmp_path / "empty")
    with pytest.raises(DataError, match="not found"):
        load_folder(tmp_path / "missing")
    for i in range(3):
        _npy(tmp_path / "one" / "chair" / f"{i}.npy", i)
    with pytest.raises(DataError, match="single class folder"):
        load_folder(tmp_path / "one")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.pcd").write_text("junk")
    (tmp_path / "bad" / "y.off").write_text("junk")
    with pytest.raises(DataError, match="every one of its 2 files was skipped"):
        load_folder(tmp_path / "bad")
    bad = np.ones((10, 3))
    bad[0, 0] = np.nan
    (tmp_path / "nan").mkdir()
    np.save(tmp_path / "nan" / "x.npy", bad)
    with pytest.raises(DataError, match="non-finite"):
        load_folder(tmp_path / "nan")


def test_folder_cache(tmp_path):
    for c in ("a", "b"):
        for i in range(2):
            _npy(tmp_path / "d" / c / f"{i}.npy", i)
    first = load_folder(tmp_path / "d", N, cache=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("folder-*.npz"))) == 1
    second = load_folder(tmp_path / "d", N, cache=tmp_path / "cache")
    assert torch.equal(first.points, second.points) and first.files == second.files


# ---- CGAL ----


def test_cgal_missing_names_the_package(tmp_path):
    with pytest.raises(DataError, match="apt-get install libcgal-demo"):
        load_cgal(N, cache=tmp_path, doc=tmp_path / "nothing")


def test_cgal_archive_meshes(tmp_path):
    doc = tmp_path / "doc"
    doc.mkdir()
    with tarfile.open(doc / "data.tar.gz", "w:gz") as tar:
        for name, text in (
            (
                "demo/Polyhedron/data/tetra.off",
                "OFF\n4 4 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n3 0 1 3\n3 0 2 3\n3 1 2 3\n",
            ),
            ("data/points_3/points.off", "OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n"),
            ("data/README", "not a mesh"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text.encode()))
    clouds = load_cgal(N, cache=tmp_path / "cache", doc=doc)
    assert clouds.shape == (2, N, 3)
    assert load_cgal(N, cache=tmp_path / "cache", doc=doc).shape == (2, N, 3)  # extracted once, then cached
    views = load_cgal(N, cache=tmp_path / "cache", doc=doc, views=3)
    assert views.shape == (3 + 1, N, 3)  # 3 partial views of the mesh, the point set once
    assert torch.equal(views, load_cgal(N, cache=tmp_path / "cache", doc=doc, views=3))


@pytest.mark.skipif(not (CGAL_DOC / "data.tar.gz").is_file(), reason="libcgal-demo is not installed")
def test_cgal_installed(tmp_path):
    clouds = load_cgal(N, "random", cache=tmp_path, views=2)
    assert clouds.shape[1:] == (N, 3) and len(clouds) > 200


# ---- load_data ----


def test_load_data_shapes_bundle(tmp_path):
    cfg = PointDataConfig(
        num_points=N, pretrain_per_class=1, probe_train_per_class=10, probe_test_per_class=20, cache_dir=str(tmp_path)
    )
    b = load_data(cfg)
    k = len(SHAPES)
    assert b.train.shape == (k, N, 3) and b.train.dtype == torch.float32 and b.info.num_points == N
    assert len(b.probe_train.labels) == 10 * k and len(b.probe_test.labels) == 20 * k
    assert b.probe_test.class_names == list(SHAPES)
    # the three sets are disjoint draws
    assert not any(torch.equal(b.train[0], x) for x in b.probe_train.inputs)
    assert b.raw_features(b.probe_train.inputs[:4]).shape == (4, 64)
    assert b.extra_baselines["fpfh"](b.probe_train.inputs[:2]).shape == (2, 66)
    svm = b.extra_probes["svm"]("raw_input", b.raw_features, "cpu", None)
    few = b.extra_probes["fewshot"]("raw_input", b.raw_features, "cpu", None)
    assert 1 / k < svm <= 1 and 0.2 < few <= 1  # better than chance
    # the two columns embed once; an embedding that changed under the same row name is embedded again
    calls = []

    def embed(x):
        calls.append(len(x))
        return b.raw_features(x)

    probes = b.extra_probes["svm"].__self__
    probes.svm("row", embed, "cpu", None)
    probes.fewshot("row", embed, "cpu", None)
    assert sum(calls) == 2 * 8 + 30 * k

    def other(x):
        return b.raw_features(x).flip(1)

    probes.svm("row", other, "cpu", None)
    assert not torch.equal(probes.embeddings("row", other, "cpu")[0], probes.embeddings("row", embed, "cpu")[0])
    assert set(DATASETS) >= {"shapes", "cgal", "path"}


def test_config_validation():
    with pytest.raises(ConfigError, match="sampling"):
        PointDataConfig(sampling="grid")
    with pytest.raises(ConfigError, match="fewshot_episodes"):
        PointDataConfig(fewshot_episodes=1)
    with pytest.raises(ConfigError, match="num_points"):
        PointDataConfig(num_points=4)

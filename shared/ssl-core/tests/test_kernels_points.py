"""Point-cloud operators against naive references written from their definitions, and against open3d.

Every implementation of each operator (NumPy / torch / KD-tree / chunked, and Triton under TRITON_INTERPRET=1
on CPU) must give the reference's answer on odd sizes that cross several tiles.
"""

import importlib.util

import numpy as np
import pytest
import torch

from ssl_core.errors import ConfigError
from ssl_core.kernels import ball_query, chamfer_distance, farthest_point_sampling, knn
from ssl_core.kernels.knn import reference as knn_reference
from ssl_core.kernels.points import _sorted_neighbours

HAS_TRITON = importlib.util.find_spec("triton") is not None
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="Triton is not installed")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _clouds(b, n, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, n, 3, generator=g).to(dtype)


# ---- naive references ------------------------------------------------------------------------------------


def naive_fps(cloud: np.ndarray, n_samples: int, start: int) -> list[int]:
    """Greedy FPS, one point at a time: the farthest (first on ties) from everything chosen so far."""
    chosen = [start]
    nearest = [float("inf")] * len(cloud)
    for _ in range(n_samples - 1):
        last = cloud[chosen[-1]]
        for j, p in enumerate(cloud):
            nearest[j] = min(nearest[j], float(sum((p[a] - last[a]) ** 2 for a in range(3))))
        chosen.append(int(np.argmax(nearest)))
    return chosen


def naive_knn(query: torch.Tensor, points: torch.Tensor, k: int):
    """Full squared-distance matrix in float64, each row sorted by (distance, index)."""
    d = ((query.double()[:, :, None] - points.double()[:, None]) ** 2).sum(-1)
    idx = torch.from_numpy(np.stack([[np.lexsort((np.arange(len(r)), r))[:k] for r in cloud] for cloud in d.numpy()]))
    return d.gather(2, idx), idx


def naive_ball_query(query: torch.Tensor, points: torch.Tensor, radius: float, k: int):
    """For each centre, scan the points in index order and keep the first k strictly inside."""
    d = ((query[:, :, None] - points[:, None]) ** 2).sum(-1)  # same float32 arithmetic as the operators
    b, m = query.shape[:2]
    idx = torch.zeros(b, m, k, dtype=torch.int64)
    counts = torch.zeros(b, m, dtype=torch.int64)
    for bi in range(b):
        for i in range(m):
            found = [j for j in range(points.shape[1]) if d[bi, i, j] < radius * radius][:k]
            counts[bi, i] = len(found)
            if found:
                idx[bi, i] = torch.tensor(found + [found[0]] * (k - len(found)))
    return idx, counts


def naive_chamfer(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    d = ((x[:, :, None] - y[:, None]) ** 2).sum(-1)
    return d.min(2).values.mean(1) + d.min(1).values.mean(1)


# ---- farthest point sampling -----------------------------------------------------------------------------

FPS_IMPLS = ["numpy", "torch", pytest.param("triton", marks=needs_triton)]


@pytest.mark.parametrize("impl", FPS_IMPLS)
@pytest.mark.parametrize("b,n,n_samples,start", [(1, 1, 1, 0), (2, 37, 11, 5), (3, 70, 70, 69)])
def test_fps_matches_the_greedy_definition(impl, b, n, n_samples, start):
    points = _clouds(b, n, seed=n)
    ours = farthest_point_sampling(points, n_samples, start, impl=impl)
    assert ours.shape == (b, n_samples) and ours.dtype == torch.int64
    for cloud, sampled in zip(points.double().numpy(), ours.tolist(), strict=True):
        assert sampled == naive_fps(cloud, n_samples, start)


@needs_triton
def test_fps_triton_crosses_blocks_and_takes_half_precision():
    from ssl_core.kernels.fps.triton import fps_triton

    points = _clouds(2, 45, seed=1, dtype=torch.float16)
    ours = fps_triton(points, 12, start=3, block=16)  # three blocks, the last one ragged
    reference = farthest_point_sampling(points, 12, 3, impl="torch")  # half is computed in float32 there too
    assert torch.equal(ours.cpu(), reference)


def test_fps_selects_the_same_set_as_open3d():
    o3d = pytest.importorskip("open3d")
    points = _clouds(3, 2000, seed=7)
    for start in (0, 123):
        ours = farthest_point_sampling(points, 200, start)
        for cloud, sampled in zip(points, ours, strict=True):
            pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(cloud.double().numpy()))
            theirs = np.asarray(pcd.farthest_point_down_sample(200, start).points)  # points, in index order
            mine = cloud[sampled.sort().values].double().numpy()
            np.testing.assert_array_equal(mine, theirs)


# ---- k nearest neighbours --------------------------------------------------------------------------------

KNN_IMPLS = ["kdtree", "chunked", pytest.param("triton", marks=needs_triton)]


@pytest.mark.parametrize("impl", KNN_IMPLS)
@pytest.mark.parametrize("b,m,n,k", [(1, 1, 1, 1), (2, 21, 53, 5), (2, 70, 150, 33)])
def test_knn_matches_the_full_distance_matrix(impl, b, m, n, k):
    query, points = _clouds(b, m, seed=m), _clouds(b, n, seed=n)
    dist, idx = knn(query, points, k, impl=impl)
    ref_dist, ref_idx = naive_knn(query, points, k)
    assert torch.equal(idx, ref_idx)
    torch.testing.assert_close(dist.double(), ref_dist, rtol=1e-6, atol=1e-7)


def test_knn_orders_ties_by_index():
    points = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0], [-1.0, 0, 0], [0, 0, 2.0], [0, -1.0, 0]]])
    query = torch.zeros(1, 1, 3)
    for impl in ("kdtree", "chunked"):
        dist, idx = knn(query, points, 4, impl=impl)
        assert idx.tolist() == [[[0, 1, 2, 4]]]
        assert dist.tolist() == [[[1.0, 1.0, 1.0, 1.0]]]


@pytest.mark.parametrize("impl", KNN_IMPLS)
def test_knn_distances_are_differentiable(impl):
    query = _clouds(2, 9, seed=1, dtype=torch.float64 if impl != "triton" else torch.float32)
    points = _clouds(2, 30, seed=2, dtype=query.dtype)
    q, p = query.clone().requires_grad_(True), points.clone().requires_grad_(True)
    dist, _ = knn(q, p, 4, impl=impl)
    weights = torch.rand_like(dist)
    gq, gp = torch.autograd.grad((dist * weights).sum(), (q, p))
    q2, p2 = query.double().requires_grad_(True), points.double().requires_grad_(True)
    d = ((q2[:, :, None] - p2[:, None]) ** 2).sum(-1)
    ref = d.sort(2).values[:, :, :4]
    rq, rp = torch.autograd.grad((ref * weights.double()).sum(), (q2, p2))
    torch.testing.assert_close(gq.double(), rq, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gp.double(), rp, rtol=1e-5, atol=1e-6)


@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_knn_triton_small_tiles(dtype):
    from ssl_core.kernels.knn.triton import knn_triton

    query, points = _clouds(2, 19, seed=3, dtype=dtype), _clouds(2, 61, seed=4, dtype=dtype)
    idx = knn_triton(query, points, 7, block_m=16, block_n=16)  # 2 x 4 tiles, both ragged
    _, ours = _sorted_neighbours(query, points, idx)
    _, ref = naive_knn(query.float(), points.float(), 7)
    assert torch.equal(ours.cpu(), ref)


def test_knn_matches_open3d():
    o3d = pytest.importorskip("open3d")
    points = _clouds(2, 3000, seed=11)
    query = points[:, :500]
    dist, idx = knn(query, points, 16)
    for b in range(2):
        nns = o3d.core.nns.NearestNeighborSearch(o3d.core.Tensor.from_numpy(points[b].numpy()))
        nns.knn_index()
        theirs_idx, theirs_dist = nns.knn_search(o3d.core.Tensor.from_numpy(query[b].numpy()), 16)
        theirs_dist = torch.from_numpy(theirs_dist.numpy())
        torch.testing.assert_close(dist[b], theirs_dist, rtol=1e-5, atol=1e-7)
        # indices agree except where two neighbours are tied to float32 precision
        agree = (idx[b] == torch.from_numpy(theirs_idx.numpy())).float().mean().item()
        assert agree > 0.999


def test_chunked_knn_never_builds_the_full_distance_matrix(monkeypatch):
    monkeypatch.setattr(knn_reference, "BLOCK_ELEMENTS", 2 * 8 * 300)  # 8 queries per block
    query, points = _clouds(2, 50, seed=5), _clouds(2, 300, seed=6)
    seen = []
    original = knn_reference.squared_distances
    monkeypatch.setattr(knn_reference, "squared_distances", lambda q, p: seen.append(q.shape[1]) or original(q, p))
    _, idx = knn(query, points, 3, impl="chunked")
    assert max(seen) == 8 and sum(seen) == 50
    assert torch.equal(idx, naive_knn(query, points, 3)[1])


# ---- ball query ------------------------------------------------------------------------------------------

BALL_IMPLS = ["chunked", pytest.param("triton", marks=needs_triton)]


@pytest.mark.parametrize("impl", BALL_IMPLS)
@pytest.mark.parametrize("b,m,n,radius,k", [(1, 1, 1, 0.5, 1), (2, 21, 53, 0.3, 6), (2, 40, 150, 0.2, 5)])
def test_ball_query_matches_the_definition(impl, b, m, n, radius, k):
    query, points = _clouds(b, m, seed=m + 1), _clouds(b, n, seed=n + 1)
    idx, counts = ball_query(query, points, radius, k, impl=impl)
    ref_idx, ref_counts = naive_ball_query(query, points, radius, k)
    assert torch.equal(counts, ref_counts)
    assert torch.equal(idx, ref_idx)


@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_ball_query_triton_small_tiles_and_empty_balls(dtype):
    from ssl_core.kernels.ball_query.triton import ball_query_triton

    query, points = _clouds(2, 19, seed=8, dtype=dtype), _clouds(2, 61, seed=9, dtype=dtype)
    query[0, 0] = 5.0  # far away: an empty ball
    idx, counts = ball_query_triton(query, points, 0.35, 9, block_m=16, block_n=16)
    # half inputs are compared in float32, as the kernel loads them
    ref_idx, ref_counts = naive_ball_query(query.float(), points.float(), 0.35, 9)
    assert counts[0, 0] == 0 and (idx[0, 0] == 0).all()
    assert torch.equal(counts.cpu(), ref_counts) and torch.equal(idx.cpu(), ref_idx)


def test_chunked_ball_query_in_blocks(monkeypatch):
    from ssl_core.kernels.ball_query import reference as ball_reference

    monkeypatch.setattr(knn_reference, "BLOCK_ELEMENTS", 2 * 4 * 80)  # 4 queries per block
    seen = []
    original = ball_reference.squared_distances
    monkeypatch.setattr(ball_reference, "squared_distances", lambda q, p: seen.append(q.shape[1]) or original(q, p))
    query, points = _clouds(2, 13, seed=10), _clouds(2, 80, seed=11)
    idx, counts = ball_query(query, points, 0.4, 7, impl="chunked")
    assert seen == [4, 4, 4, 1]
    ref_idx, ref_counts = naive_ball_query(query, points, 0.4, 7)
    assert torch.equal(idx, ref_idx) and torch.equal(counts, ref_counts)


# ---- Chamfer distance ------------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", KNN_IMPLS)
def test_chamfer_values_and_gradients(impl):
    dtype = torch.float32 if impl == "triton" else torch.float64
    x, y = _clouds(2, 23, seed=12, dtype=dtype), _clouds(2, 41, seed=13, dtype=dtype)
    x1, y1 = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    ours = chamfer_distance(x1, y1, impl=impl)
    gx, gy = torch.autograd.grad((ours * torch.tensor([1.0, 2.0], dtype=ours.dtype)).sum(), (x1, y1))
    x2, y2 = x.double().requires_grad_(True), y.double().requires_grad_(True)
    ref = naive_chamfer(x2, y2)
    rx, ry = torch.autograd.grad((ref * torch.tensor([1.0, 2.0], dtype=torch.float64)).sum(), (x2, y2))
    torch.testing.assert_close(ours.double(), ref, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(gx.double(), rx, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(gy.double(), ry, rtol=1e-5, atol=1e-7)


def test_chamfer_matches_open3d_distances():
    o3d = pytest.importorskip("open3d")
    x, y = _clouds(1, 500, seed=14), _clouds(1, 700, seed=15)
    pcd_x = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(x[0].double().numpy()))
    pcd_y = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(y[0].double().numpy()))
    to_y = np.asarray(pcd_x.compute_point_cloud_distance(pcd_y)) ** 2  # open3d gives unsquared distances
    to_x = np.asarray(pcd_y.compute_point_cloud_distance(pcd_x)) ** 2
    assert chamfer_distance(x, y).item() == pytest.approx(to_y.mean() + to_x.mean(), rel=1e-6)


def test_chamfer_is_zero_on_identical_clouds_and_symmetric():
    x, y = _clouds(2, 30, seed=16), _clouds(2, 17, seed=17)
    assert (chamfer_distance(x, x) == 0).all()
    torch.testing.assert_close(chamfer_distance(x, y), chamfer_distance(y, x))


# ---- input errors ----------------------------------------------------------------------------------------


def test_input_errors():
    cloud = torch.rand(2, 10, 3)
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        knn(torch.rand(2, 10), cloud, 3)
    with pytest.raises(ValueError, match="batch size"):
        knn(torch.rand(3, 10, 3), cloud, 3)
    with pytest.raises(ValueError, match="floating-point"):
        farthest_point_sampling(torch.ones(1, 4, 3, dtype=torch.int64), 2)
    with pytest.raises(ConfigError, match="k must be between 1 and the number of points 10"):
        knn(cloud, cloud, 11)
    with pytest.raises(ConfigError, match="n_samples"):
        farthest_point_sampling(cloud, 11)
    with pytest.raises(ConfigError, match="start"):
        farthest_point_sampling(cloud, 3, start=10)
    with pytest.raises(ConfigError, match="radius"):
        ball_query(cloud, cloud, 0.0, 4)
    with pytest.raises(ValueError, match="empty"):
        chamfer_distance(cloud, torch.rand(2, 0, 3))

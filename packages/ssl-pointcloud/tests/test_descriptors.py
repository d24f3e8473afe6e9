"""The hand-crafted baselines: D2 against a naive NumPy reference, pooled FPFH against a direct open3d call."""

import numpy as np
import pytest
import torch

from ssl_pointcloud.descriptors import PerCloudCache, d2_histogram, d2_pairs, fpfh_pooled


def _clouds(b=3, n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, 3, generator=g)
    return x / x.norm(dim=-1).amax(1)[:, None, None]


def test_d2_matches_naive_reference():
    x = _clouds()
    bins, pairs = 16, 500
    got = d2_histogram(x, bins=bins, pairs=pairs, seed=3)
    i, j = d2_pairs(x.shape[1], pairs, seed=3)
    pts = x.double().numpy()
    for b in range(len(pts)):
        ref = np.zeros(bins)
        for a, c in zip(i.tolist(), j.tolist(), strict=True):
            d = np.sqrt(((pts[b, a] - pts[b, c]) ** 2).sum())
            ref[min(int(d / 2.0 * bins), bins - 1)] += 1
        np.testing.assert_allclose(got[b].numpy(), ref / pairs, atol=1e-6)
        # and the same as NumPy's histogram of those distances
        dist = np.linalg.norm(pts[b, i.numpy()] - pts[b, j.numpy()], axis=1)
        np.testing.assert_allclose(got[b].numpy(), np.histogram(dist, bins, (0, 2))[0] / pairs, atol=1e-6)


def test_d2_pairs_distinct_uniform_and_deterministic():
    i, j = d2_pairs(10, 20000, seed=1)
    assert bool((i != j).all())
    counts = np.bincount(i.numpy(), minlength=10) + np.bincount(j.numpy(), minlength=10)
    assert counts.min() > 0.9 * counts.mean()
    i2, j2 = d2_pairs(10, 20000, seed=1)
    assert torch.equal(i, i2) and torch.equal(j, j2)


def test_d2_normalised_deterministic_and_rotation_invariant():
    x = _clouds()
    h = d2_histogram(x)
    assert h.shape == (3, 64) and h.dtype == torch.float32
    torch.testing.assert_close(h.sum(1), torch.ones(3))
    assert torch.equal(h, d2_histogram(x))
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0)))
    rotated = d2_histogram(x @ q.T)
    assert (rotated - h).abs().sum(1).max() < 0.01  # only distances on a bin edge may move
    # an array works too
    assert torch.equal(d2_histogram(x.numpy()), h)


def test_d2_bad_input():
    with pytest.raises(ValueError, match="B, N, 3"):
        d2_histogram(torch.zeros(10, 3))
    with pytest.raises(ValueError, match="at least 2 points"):
        d2_histogram(torch.zeros(1, 1, 3))


def _fpfh_direct(cloud: np.ndarray, radius: float, normal_radius: float, max_nn: int) -> np.ndarray:
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(cloud))
    pcd.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=normal_radius, max_nn=max_nn))
    n = np.asarray(pcd.normals).copy()
    flip = ((cloud - cloud.mean(0)) * n).sum(1) < 0
    n[flip] = -n[flip]
    pcd.normals = o3d.utility.Vector3dVector(n)
    feat = o3d.pipelines.registration.compute_fpfh_feature(
        pcd, o3d.geometry.KDTreeSearchParamHybrid(radius=radius, max_nn=max_nn)
    )
    f = np.asarray(feat.data)  # (33, N)
    return np.concatenate([f.mean(1), f.max(1)])


def test_fpfh_pooled_matches_direct_open3d_call():
    from ssl_pointcloud.data.shapes import SHAPES, random_mesh, scan

    rng = np.random.default_rng(0)
    x = np.stack([scan(random_mesh(SHAPES[k], rng), rng, 256) for k in (0, 5)]).astype(np.float64)
    got = fpfh_pooled(torch.from_numpy(x), radius=0.3, normal_radius=0.15, max_nn=24)
    assert got.shape == (2, 66) and got.dtype == torch.float32
    for b in range(2):
        np.testing.assert_allclose(got[b].numpy(), _fpfh_direct(x[b], 0.3, 0.15, 24), rtol=1e-5, atol=1e-4)
    assert bool((got[:, :33] <= got[:, 33:] + 1e-6).all())  # means below maxima
    serial = fpfh_pooled(torch.from_numpy(x), radius=0.3, normal_radius=0.15, max_nn=24, workers=1)
    assert torch.equal(got, serial)  # threads change nothing


def test_per_cloud_cache_computes_each_cloud_once():
    calls = []

    def fn(points):
        calls.append(len(points))
        return points.mean(1)

    cached = PerCloudCache(fn)
    x = _clouds(5, 20)
    torch.testing.assert_close(cached(x[:3]), x[:3].mean(1))
    torch.testing.assert_close(cached(x), x.mean(1))  # in another batching
    assert calls == [3, 2]
    assert cached.__name__ == "fn"

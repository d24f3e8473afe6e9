"""Normals, surface variation and group occupancy (ssl_pointcloud.geometry) against naive references and open3d."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssl_core.errors import ConfigError
from ssl_pointcloud.geometry import group_occupancy, normals_and_curvature


def naive_normals(points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per point: brute-force k nearest (itself included), np.cov, np.linalg.eigh."""
    normals, curv = [], []
    for p in points:
        nearest = points[np.argsort(((points - p) ** 2).sum(1), kind="stable")[:k]]
        w, v = np.linalg.eigh(np.cov(nearest, rowvar=False))
        w = np.clip(w, 0, None)
        normals.append(v[:, 0])
        curv.append(w[0] / w.sum())
    return np.array(normals), np.array(curv)


def sphere(n: int, radius: float = 1.0, seed: int = 0) -> np.ndarray:
    """Fibonacci sphere: near-uniform points."""
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5**0.5) * i
    p = np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], 1)
    return radius * p


def plane(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    uv = rng.uniform(-1, 1, (n, 2))
    a, b = np.array([1.0, 0.2, 0.3]), np.array([0.1, 1.0, -0.4])
    return uv[:, :1] * a + uv[:, 1:] * b + np.array([0.1, 0.2, 0.3])


def cylinder(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t, z = rng.uniform(0, 2 * np.pi, n), rng.uniform(-1, 1, n)
    return np.stack([0.5 * np.cos(t), 0.5 * np.sin(t), z], 1)


def test_matches_naive_reference_batched():
    rng = np.random.default_rng(1)
    clouds = rng.normal(size=(2, 200, 3)) * np.array([1.0, 0.5, 0.2])
    normals, curv = normals_and_curvature(torch.tensor(clouds, dtype=torch.float64), k=10, orient="none")
    assert normals.shape == (2, 200, 3) and curv.shape == (2, 200)
    for b in range(2):
        ref_n, ref_c = naive_normals(clouds[b], 10)
        cos = np.abs((normals[b].numpy() * ref_n).sum(1))
        assert cos.min() > 1 - 1e-8
        np.testing.assert_allclose(curv[b].numpy(), ref_c, rtol=1e-8, atol=1e-12)
    assert torch.allclose(normals.norm(dim=-1), torch.ones(2, 200, dtype=torch.float64))
    assert (curv >= 0).all() and (curv <= 1 / 3 + 1e-9).all()


def test_single_cloud_and_leading_dims():
    pts = torch.tensor(plane(100), dtype=torch.float32)
    n1, c1 = normals_and_curvature(pts, k=8)
    n2, c2 = normals_and_curvature(pts.expand(2, 3, 100, 3), k=8)
    assert n1.shape == (100, 3) and n2.shape == (2, 3, 100, 3) and c2.shape == (2, 3, 100)
    assert n1.dtype == torch.float32
    torch.testing.assert_close(n2[1, 2], n1)
    torch.testing.assert_close(c2[0, 1], c1)


@pytest.mark.parametrize("surface", ["sphere", "plane", "cylinder"])
def test_matches_open3d_on_smooth_surfaces(surface):
    o3d = pytest.importorskip("open3d")
    pts = {"sphere": sphere(2000), "plane": plane(2000), "cylinder": cylinder(3000)}[surface]
    k = 16
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    pcd.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(k))
    ref = np.asarray(pcd.normals)
    normals, _ = normals_and_curvature(torch.tensor(pts, dtype=torch.float32), k=k)
    cos = np.abs((normals.numpy().astype(np.float64) * ref).sum(1))
    assert cos.min() >= 0.99, f"{surface}: worst |cos| {cos.min():.4f}"


def test_orientation_away_from_centroid_on_sphere():
    pts = torch.tensor(sphere(1000, radius=0.3), dtype=torch.float32) + torch.tensor([1.0, 2.0, 3.0])
    normals, _ = normals_and_curvature(pts, k=16)
    radial = torch.nn.functional.normalize(pts - pts.mean(0), dim=1)
    assert ((normals * radial).sum(1) > 0.99).all()


def test_curvature_plane_zero_sphere_analytic():
    _, c_plane = normals_and_curvature(torch.tensor(plane(1000), dtype=torch.float64), k=16)
    assert c_plane.abs().max() < 1e-12
    n, k = 4000, 16
    for radius in (0.05, 1.0):  # surface variation does not depend on the radius
        _, c = normals_and_curvature(torch.tensor(sphere(n, radius), dtype=torch.float64), k=k)
        assert c.min() > 0
        # cap of area k/N of the sphere: sigma ~ k / (6 N)
        assert abs(c.mean().item() / (k / (6 * n)) - 1) < 0.25, c.mean().item()
    # a small sphere sampled as densely as the plane is far more curved
    _, c_small = normals_and_curvature(torch.tensor(sphere(200, 0.05), dtype=torch.float64), k=16)
    assert c_small.mean() > 100 * c_plane.abs().max() + 0.005


def test_degenerate_neighbourhoods():
    # duplicates: 20 copies of one point plus a plane far away
    pts = np.concatenate([np.repeat([[5.0, 5.0, 5.0]], 20, 0), plane(50)])
    normals, curv = normals_and_curvature(torch.tensor(pts), k=8)
    assert torch.isfinite(normals).all() and torch.isfinite(curv).all()
    assert (curv[:20] == 0).all()
    torch.testing.assert_close(normals.norm(dim=1), torch.ones(70, dtype=torch.float64))
    # collinear points: curvature 0, normal perpendicular to the line
    line = torch.linspace(0, 1, 30, dtype=torch.float64)[:, None] * torch.tensor([1.0, 2.0, 2.0]) / 3
    normals, curv = normals_and_curvature(line, k=5)
    assert curv.abs().max() < 1e-10
    assert (normals @ torch.tensor([1.0, 2.0, 2.0], dtype=torch.float64) / 3).abs().max() < 1e-6


def test_bad_input_errors():
    with pytest.raises(ValueError, match="NaN"):
        normals_and_curvature(torch.tensor([[0.0, 0.0, float("nan")]] * 10), k=4)
    with pytest.raises(ConfigError, match="k"):
        normals_and_curvature(torch.zeros(5, 3), k=8)
    with pytest.raises(ValueError, match="N, 3"):
        normals_and_curvature(torch.zeros(5, 2), k=3)
    with pytest.raises(ConfigError, match="orient"):
        normals_and_curvature(torch.zeros(5, 3), k=3, orient="up")


def naive_occupancy(group: np.ndarray, r: int) -> np.ndarray:
    h = max(np.abs(group).max(), 1e-12)
    occ = np.zeros((r, r, r))
    for p in group:
        i = [min(max(int(np.floor((c / h + 1) * r / 2)), 0), r - 1) for c in p]
        occ[i[0], i[1], i[2]] = 1
    return occ.reshape(-1)


def test_group_occupancy_matches_naive():
    rng = np.random.default_rng(3)
    groups = rng.normal(size=(2, 5, 16, 3)) * rng.uniform(0.01, 1, (2, 5, 1, 1))
    groups[0, 0] = 0.0  # a one-point group
    occ = group_occupancy(torch.tensor(groups), resolution=4)
    assert occ.shape == (2, 5, 64)
    for b in range(2):
        for g in range(5):
            np.testing.assert_array_equal(occ[b, g].numpy(), naive_occupancy(groups[b, g], 4))
    assert occ[0, 0].sum() == 1

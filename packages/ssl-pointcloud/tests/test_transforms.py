"""Augmentations against naive references: rotations (orthonormal, det +1, Haar-uniform, SciPy's quaternion
matrices), scale / shift / jitter bounds, dropout, resampling, crops, and exact correspondences of paired views."""

import math

import numpy as np
import pytest
import torch

from ssl_core.errors import ConfigError
from ssl_pointcloud.transforms import (
    apply_transform,
    correspondences,
    crop,
    dropout,
    jitter,
    normalize,
    paired_views,
    quaternion_to_matrix,
    random_rotation,
    random_rotation_z,
    random_similarity,
    resample,
    resample_indices,
    rotate,
    scale,
    translate,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def cloud(b=None, n=128, seed=0):
    shape = (n, 3) if b is None else (b, n, 3)
    return torch.randn(shape, generator=gen(seed))


def test_quaternion_matrix_matches_scipy():
    from scipy.spatial.transform import Rotation

    q = torch.randn(20, 4, generator=gen(), dtype=torch.float64)
    q = q / q.norm(dim=1, keepdim=True)
    ref = Rotation.from_quat(q[:, [1, 2, 3, 0]].numpy()).as_matrix()  # SciPy: (x, y, z, w)
    np.testing.assert_allclose(quaternion_to_matrix(q).numpy(), ref, atol=1e-12)


def test_random_rotation_orthonormal_and_uniform():
    r = random_rotation(20000, gen(), torch.float64)
    eye = torch.eye(3, dtype=torch.float64)
    torch.testing.assert_close(r @ r.transpose(1, 2), eye.expand_as(r), atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(20000, dtype=torch.float64))
    # Haar measure: E[R] = 0, E[R_ij^2] = 1/3, P(angle <= pi/2) = (pi/2 - 1) / pi
    assert r.mean(0).abs().max() < 0.02
    assert (r.square().mean(0) - 1 / 3).abs().max() < 0.01
    angle = torch.arccos(((r.diagonal(dim1=1, dim2=2).sum(1) - 1) / 2).clamp(-1, 1))
    assert abs(float((angle <= math.pi / 2).double().mean()) - (math.pi / 2 - 1) / math.pi) < 0.01
    assert torch.equal(random_rotation(5, gen(3)), random_rotation(5, gen(3)))


def test_rotation_about_z():
    r = random_rotation_z(1000, gen(), max_angle=0.5, dtype=torch.float64)
    torch.testing.assert_close(r[:, 2], torch.tensor([0.0, 0, 1], dtype=torch.float64).expand(1000, 3))
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(1000, dtype=torch.float64))
    assert float(torch.atan2(r[:, 1, 0], r[:, 0, 0]).abs().max()) <= 0.5 + 1e-12
    x = cloud(4)
    y, rz = rotate(x, "z", gen())
    torch.testing.assert_close(y[..., 2], x[..., 2])
    torch.testing.assert_close(y, torch.einsum("bij,bnj->bni", rz, x))
    y, rs = rotate(x[0], "so3", gen())
    assert rs.shape == (3, 3)
    torch.testing.assert_close(y.norm(dim=1), x[0].norm(dim=1))
    with pytest.raises(ConfigError):
        rotate(x, "xyz")


def test_scale_translate_jitter():
    x = cloud(8)
    y, s = scale(x, 0.5, 2.0, anisotropic=True, generator=gen())
    assert s.shape == (8, 3) and bool(((s >= 0.5) & (s <= 2.0)).all())
    torch.testing.assert_close(y, x * s[:, None])
    _, s_iso = scale(x, 0.5, 2.0, anisotropic=False, generator=gen())
    assert bool((s_iso == s_iso[:, :1]).all())
    y, t = translate(x, 0.3, gen())
    assert bool((t.abs() <= 0.3).all())
    torch.testing.assert_close(y, x + t[:, None])
    big = torch.zeros(4, 5000, 3)
    noise = jitter(big, sigma=0.01, clip=0.02, generator=gen())
    assert float(noise.abs().max()) <= 0.02 + 1e-7
    assert abs(float(noise.std()) - 0.01) < 0.001  # clipping at 2 sigma shrinks the std a little


def test_dropout_replaces_by_first_point():
    x = cloud(6, 500)
    y, kept = dropout(x, 0.875, gen())
    assert bool(kept[:, 0].all())
    torch.testing.assert_close(y[kept], x[kept])
    first = x[:, :1].expand_as(x)
    torch.testing.assert_close(y[~kept], first[~kept])
    assert 0 < int((~kept).sum()) < x.shape[0] * x.shape[1]


def test_resample_exact_count_and_indices():
    idx = resample_indices(10, 25, gen())
    assert idx.shape == (25,) and set(idx.tolist()) == set(range(10))  # every point kept once at least
    idx = resample_indices(100, 30, gen())
    assert len(set(idx.tolist())) == 30  # without replacement
    x = cloud(3, 50)
    y, i = resample(x, 80, gen())
    assert y.shape == (3, 80, 3)
    torch.testing.assert_close(y, torch.stack([x[b, i[b]] for b in range(3)]))


def test_crop_plane_keeps_one_end_of_a_line_and_ball_a_run():
    t = torch.arange(40, dtype=torch.float64)
    line = torch.stack([t, 0 * t, 0 * t], 1)  # points along x, in order
    for seed in range(10):
        view, idx = crop(line, keep=0.25, mode="plane", num_points=10, generator=gen(seed))
        assert idx.shape == (10,) and set(idx.tolist()) in ({*range(10)}, {*range(30, 40)})
        torch.testing.assert_close(view, line[idx])
        _, idx = crop(line, keep=0.25, mode="ball", num_points=10, generator=gen(seed))
        kept = sorted(set(idx.tolist()))
        assert kept == list(range(kept[0], kept[0] + 10))  # the 10 nearest of a point of a line: a run
    view, idx = crop(cloud(2, 100), keep=0.5, num_points=64, generator=gen())
    assert view.shape == (2, 64, 3) and idx.shape == (2, 64) and len(set(idx[0].tolist())) == 50
    with pytest.raises(ConfigError):
        crop(line, keep=0.0)


def test_normalize_unit_sphere():
    y = normalize(cloud(3) * 5 + 2)
    torch.testing.assert_close(y.mean(1), torch.zeros(3, 3), atol=1e-6, rtol=0)
    torch.testing.assert_close(y.norm(dim=-1).amax(1), torch.ones(3))


def test_random_similarity_is_rotation_times_scale():
    t = random_similarity(50, gen(), "so3", (0.5, 2.0), anisotropic=False, shift=0.1, dtype=torch.float64)
    a = t[:, :3, :3]
    s2 = (a.transpose(1, 2) @ a).diagonal(dim1=1, dim2=2)
    torch.testing.assert_close(a.transpose(1, 2) @ a, torch.diag_embed(s2))  # A^T A = s^2 I
    assert bool((torch.linalg.det(a) > 0).all()) and bool((t[:, :3, 3].abs() <= 0.1).all())
    torch.testing.assert_close(t[:, 3], torch.tensor([0.0, 0, 0, 1], dtype=torch.float64).expand(50, 4))


@pytest.mark.parametrize("mode", ["plane", "ball", None])
def test_paired_views_correspondence_is_exact(mode):
    x = cloud(n=200, seed=1).double()
    v = paired_views(x, gen(), num_points=150, crop_mode=mode, jitter_sigma=0.0, shift=0.2, anisotropic=True)
    assert v.view_a.shape == v.view_b.shape == (150, 3) and v.transform_a.shape == (4, 4)
    torch.testing.assert_close(v.view_a, apply_transform(x[v.idx_a], v.transform_a))
    torch.testing.assert_close(v.view_b, apply_transform(x[v.idx_b], v.transform_b))
    pairs = correspondences(v.idx_a, v.idx_b)
    naive = [[i, j] for i in range(150) for j in range(150) if v.idx_a[i] == v.idx_b[j]]
    assert pairs.tolist() == naive and len(naive) > 0
    # matched points agree after undoing each view's transform (a -> b is T_b T_a^-1)
    a_to_b = v.transform_b @ torch.linalg.inv(v.transform_a)
    torch.testing.assert_close(apply_transform(v.view_a[pairs[:, 0]], a_to_b), v.view_b[pairs[:, 1]])


def test_paired_views_batched_with_jitter_and_overlap():
    x = cloud(4, 256)
    v = paired_views(x, gen(), keep=(0.7, 0.7), jitter_sigma=0.01, jitter_clip=0.03)
    assert v.view_a.shape == (4, 256, 3) and v.idx_b.shape == (4, 256) and v.transform_b.shape == (4, 4, 4)
    for b in range(4):
        clean = apply_transform(x[b, v.idx_a[b]], v.transform_a[b])
        assert float((v.view_a[b] - clean).abs().max()) <= 0.03 + 1e-6
        shared = set(v.idx_a[b].tolist()) & set(v.idx_b[b].tolist())
        # each view keeps 70% of the points: they share >= 40% of them, resampling keeps most of those
        assert len(shared) > 0.2 * 256
    w = paired_views(x, gen())
    assert torch.equal(w.view_a, paired_views(x, gen()).view_a)  # deterministic under a seeded generator


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        jitter(torch.zeros(5, 2))
    with pytest.raises(ValueError, match="one cloud"):
        correspondences(torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, dtype=torch.long))

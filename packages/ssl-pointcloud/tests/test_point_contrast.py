"""PointContrast: PointInfoNCE against a naive loop, paired views and their correspondences, gradients, convergence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssl_core.errors import ConfigError
from ssl_core.losses import info_nce
from ssl_core.testing import begin_step, fit_fixed_batch, pretext_batch, without_gradient
from ssl_pointcloud.info import PointInfo
from ssl_pointcloud.methods.point_contrast import (
    PairedViews,
    PointContrast,
    PointContrastConfig,
    point_info_nce,
)

TINY = dict(k=8, dims=(16, 16), width=16)


def tiny(**kw) -> PointContrast:
    kw = {"view_points": 64, "num_pairs": 24, **kw}
    return PointContrast(PointContrastConfig(backbone=TINY, **kw), PointInfo(num_points=128))


def clouds(b: int = 4, n: int = 128, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(n, 3, generator=g) * 2 - 1 for _ in range(b)]


def naive_point_info_nce(q: torch.Tensor, k: torch.Tensor, tau: float, negatives: str) -> torch.Tensor:
    b, p, _ = q.shape
    total, count = 0.0, 0
    for c in range(b):
        for i in range(p):
            qi = q[c, i] / q[c, i].norm()
            cands = [(c, j) for j in range(p)] if negatives == "cloud" else [(d, j) for d in range(b) for j in range(p)]
            logits = torch.stack([qi @ (k[d, j] / k[d, j].norm()) / tau for d, j in cands])
            pos = cands.index((c, i))
            total = total - (logits[pos] - torch.logsumexp(logits, 0))
            count += 1
    return total / count


@pytest.mark.parametrize("negatives", ["cloud", "batch"])
def test_point_info_nce_matches_naive(negatives):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(3, 5, 8, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(3, 5, 8, generator=g, dtype=torch.float64, requires_grad=True)
    loss = point_info_nce(q, k, 0.07, negatives)
    ref = naive_point_info_nce(q, k, 0.07, negatives)
    torch.testing.assert_close(loss, ref.to(loss.dtype), rtol=1e-5, atol=1e-5)
    ga = torch.autograd.grad(loss, [q, k])
    gb = torch.autograd.grad(ref, [q, k])
    for a, b in zip(ga, gb, strict=True):
        torch.testing.assert_close(a, b.to(a.dtype), rtol=1e-4, atol=1e-6)
    # one cloud: both modes are ssl_core's info_nce
    torch.testing.assert_close(point_info_nce(q[:1], k[:1], 0.2, negatives), info_nce(q[0], k[0], temperature=0.2))


def test_point_info_nce_identical_features_low_loss():
    q = F.normalize(torch.eye(6)[None].repeat(2, 1, 1), dim=-1)
    assert point_info_nce(q, q, 0.07).item() < 1e-3
    assert point_info_nce(q, q.flip(1), 0.07).item() > math.log(6)


def test_paired_views_correspondences():
    torch.manual_seed(0)
    cfg = PointContrastConfig(backbone=TINY, view_points=64, overlap=0.5, num_pairs=20, jitter=0.0)
    cloud = clouds(1)[0]
    item = PairedViews(cfg)(cloud)
    v1, v2, pairs = item["view1"], item["view2"], item["pairs"]
    assert v1.shape == v2.shape == (64, 3) and pairs.shape == (20, 2)
    i1, i2 = item["index1"], item["index2"]
    # the views hold the cloud's points, 32 shared, and the pairs name the same point of the cloud
    assert len(set(i1.tolist()) & set(i2.tolist())) == 32 and len(set(i1.tolist())) == 64
    assert (i1[pairs[:, 0]] == i2[pairs[:, 1]]).all()
    assert len(set(pairs[:, 0].tolist())) == 20
    # each view is a scaled rotation of the cloud's points: recover it by least squares, residual ~0
    for view, idx in ((v1, i1), (v2, i2)):
        a = cloud[idx].double()
        m = torch.linalg.lstsq(a, view.double()).solution  # view = a @ m, m = s R^T
        torch.testing.assert_close(a @ m, view.double(), atol=1e-5, rtol=0)
        s = torch.linalg.svdvals(m)
        assert 0.8 - 1e-4 <= s.min() and s.max() <= 1.2 + 1e-4 and (s.max() - s.min()) < 1e-4
        assert torch.det(m) > 0
    # the matched points of the two views are one point seen twice: equal after undoing each transform
    m1 = torch.linalg.lstsq(cloud[i1].double(), v1.double()).solution
    m2 = torch.linalg.lstsq(cloud[i2].double(), v2.double()).solution
    back1 = v1[pairs[:, 0]].double() @ torch.linalg.inv(m1)
    back2 = v2[pairs[:, 1]].double() @ torch.linalg.inv(m2)
    torch.testing.assert_close(back1, back2, atol=1e-5, rtol=0)


def test_paired_views_errors():
    with pytest.raises(ConfigError, match="num_pairs"):
        PointContrastConfig(view_points=64, overlap=0.5, num_pairs=40)
    with pytest.raises(ConfigError, match="points per cloud"):
        PairedViews(PointContrastConfig(view_points=512, overlap=0.5, num_pairs=64))(torch.zeros(600, 3))
    with pytest.raises(ConfigError, match="negatives"):
        PointContrastConfig(negatives="queue")


def test_forward_embed_spec():
    torch.manual_seed(0)
    method = tiny()
    batch = pretext_batch(method, clouds(3))
    assert batch["view1"].shape == (3, 64, 3) and batch["pairs"].shape == (3, 24, 2)
    begin_step(method)
    out = method(batch)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss) and "pos_sim" in out.logs
    assert method.embed(torch.stack(clouds(2))).shape == (2, 32)
    assert method.backbone_spec().name == "pointwise" and method.backbone_spec().embed_dim == 32


def test_gradients_reach_every_backbone_parameter():
    torch.manual_seed(0)
    method = tiny()
    batch = pretext_batch(method, clouds(3))
    begin_step(method)
    method(batch).loss.backward()
    missing = without_gradient(method)
    assert not missing, missing


@pytest.mark.parametrize("negatives", ["cloud", "batch"])
def test_loss_falls_on_fixed_batch(negatives):
    torch.manual_seed(0)
    method = tiny(negatives=negatives)
    batch = pretext_batch(method, clouds(4))
    losses = fit_fixed_batch(method, batch, steps=30, lr=3e-3)
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses

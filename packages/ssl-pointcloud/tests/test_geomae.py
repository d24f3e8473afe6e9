"""GeoMAE: targets and loss against naive references, masking, gradients, convergence on a fixed batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssl_core.errors import ConfigError
from ssl_core.testing import begin_step, fit_fixed_batch, pretext_batch, without_gradient
from ssl_pointcloud.geometry import normals_and_curvature
from ssl_pointcloud.info import PointInfo
from ssl_pointcloud.methods.common import random_group_mask
from ssl_pointcloud.methods.geomae import GeoMAE, GeoMAEConfig, geomae_loss, geomae_targets
from ssl_pointcloud.models.tokens import group_points

TINY = dict(num_groups=8, group_size=16, width=32, depth=1, heads=2, pointnet_dims=(16, 32, 32))


def tiny(**kw) -> GeoMAE:
    return GeoMAE(GeoMAEConfig(backbone=TINY, decoder_depth=1, decoder_heads=2, **kw), PointInfo(num_points=128))


def clouds(b: int = 4, n: int = 128, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(b):  # ellipsoids of different shapes: smooth surfaces
        p = F.normalize(torch.randn(n, 3, generator=g), dim=1) * torch.tensor([1.0, 0.5 + 0.1 * i, 0.3])
        out.append(p / p.norm(dim=1).max())
    return out


def naive_targets(neigh: np.ndarray, normals: np.ndarray, curv: np.ndarray, r: int) -> dict[str, np.ndarray]:
    b, g = neigh.shape[:2]
    out = {"centroid": np.zeros((b, g, 3)), "normal": np.zeros((b, g, 3)), "curvature": np.zeros((b, g))}
    out["occupancy"] = np.zeros((b, g, r**3))
    for i in range(b):
        radius = np.mean([np.linalg.norm(neigh[i, j], axis=1).max() for j in range(g)])
        for j in range(g):
            pts = neigh[i, j]
            out["centroid"][i, j] = pts.mean(0) / radius
            s = sum(np.outer(n, n) for n in normals[i, j])
            out["normal"][i, j] = np.linalg.eigh(s)[1][:, -1]
            out["curvature"][i, j] = 3 * curv[i, j].mean()
            h = np.abs(pts).max()
            for p in pts:
                c = [min(max(int(np.floor((v / h + 1) * r / 2)), 0), r - 1) for v in p]
                out["occupancy"][i, j, (c[0] * r + c[1]) * r + c[2]] = 1
    return out


def test_targets_match_naive_reference():
    pts = torch.stack(clouds(3, 128))
    normals, curv = normals_and_curvature(pts, 16)
    _, neigh, idx = group_points(pts, 8, 16)
    rows = torch.arange(3)[:, None, None]
    # random signs: the normal target must not depend on them
    signs = torch.where(torch.rand(3, 8, 16, 1) < 0.5, -1.0, 1.0)
    t = geomae_targets(neigh, normals[rows, idx] * signs, curv[rows, idx], resolution=3)
    ref = naive_targets(neigh.double().numpy(), normals[rows, idx].double().numpy(), curv[rows, idx].numpy(), 3)
    np.testing.assert_allclose(t["centroid"].numpy(), ref["centroid"], rtol=1e-5, atol=1e-6)
    cos = np.abs((t["normal"].numpy() * ref["normal"]).sum(-1))
    np.testing.assert_allclose(cos, 1.0, atol=1e-5)
    np.testing.assert_allclose(t["curvature"].numpy(), ref["curvature"], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(t["occupancy"].numpy(), ref["occupancy"])
    assert (t["curvature"] >= 0).all() and (t["curvature"] <= 1 + 1e-6).all()


def test_loss_matches_naive_reference():
    g = torch.Generator().manual_seed(1)
    m, r3 = 6, 8
    pred = {
        "centroid": torch.randn(m, 3, generator=g) * 2,
        "normal": torch.randn(m, 3, generator=g),
        "curvature": torch.rand(m, generator=g),
        "occupancy": torch.randn(m, r3, generator=g),
    }
    target = {
        "centroid": torch.randn(m, 3, generator=g),
        "normal": F.normalize(torch.randn(m, 3, generator=g), dim=1),
        "curvature": torch.rand(m, generator=g),
        "occupancy": (torch.rand(m, r3, generator=g) < 0.4).float(),
    }
    weights = {"centroid": 0.5, "normal": 2.0, "curvature": 1.5, "occupancy": 0.7}
    pred = {k: v.double().requires_grad_() for k, v in pred.items()}
    target = {k: v.double() for k, v in target.items()}
    loss, terms = geomae_loss(pred, target, weights)

    def naive(p):
        cen = nor = cur = occ = 0.0
        for i in range(m):
            for d in range(3):
                e = abs(p["centroid"][i, d] - target["centroid"][i, d])
                cen = cen + (0.5 * e**2 if e < 1 else e - 0.5)
            cos = (p["normal"][i] @ target["normal"][i]) / p["normal"][i].norm()
            nor = nor + 1 - cos.abs()
            cur = cur + (p["curvature"][i] - target["curvature"][i]).abs()
            for c in range(r3):
                s = torch.sigmoid(p["occupancy"][i, c])
                y = target["occupancy"][i, c]
                occ = occ - (y * torch.log(s) + (1 - y) * torch.log(1 - s))
        parts = {"centroid": cen / (3 * m), "normal": nor / m, "curvature": cur / m, "occupancy": occ / (m * r3)}
        return sum(weights[k] * v for k, v in parts.items()), parts

    ref, ref_parts = naive(pred)
    torch.testing.assert_close(loss, ref)
    for k in terms:
        torch.testing.assert_close(terms[k], ref_parts[k].detach())
    grads = torch.autograd.grad(loss, list(pred.values()))
    ref_grads = torch.autograd.grad(ref, list(pred.values()))
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b)
    # sign invariance of the normal term
    flipped = dict(pred, normal=-pred["normal"])
    torch.testing.assert_close(geomae_loss(flipped, target, weights)[0], loss)


def test_pretext_and_forward_shapes():
    torch.manual_seed(0)
    method = tiny()
    batch = pretext_batch(method, clouds(4))
    assert batch["normals"].shape == (4, 128, 3) and batch["curvature"].shape == (4, 128)
    begin_step(method)
    out = method(batch)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert set(out.logs) == {"centroid", "normal", "curvature", "occupancy"}
    # a plain batch of clouds computes the same targets in forward
    torch.manual_seed(5)
    a = method(batch).loss
    torch.manual_seed(5)
    b = method(batch["points"]).loss
    torch.testing.assert_close(a, b)
    assert method.embed(batch["points"]).shape == (4, 64)
    spec = method.backbone_spec()
    assert spec.name == "point_transformer" and spec.embed_dim == 64


def test_gradients_reach_every_backbone_parameter():
    torch.manual_seed(0)
    method = tiny()
    batch = pretext_batch(method, clouds(4))
    begin_step(method)
    method(batch).loss.backward()
    missing = without_gradient(method)
    assert not missing, missing


def test_encoder_does_not_see_masked_groups():
    torch.manual_seed(0)
    method = tiny().eval()
    pts = torch.stack(clouds(2))
    centres, neigh, _ = group_points(pts, 8, 16)
    mask = random_group_mask(2, 8, 0.6)
    latent = method.forward_encoder(neigh, centres, mask)
    assert latent.shape == (2, 8 - 4, 32)
    changed = neigh.clone()
    changed[mask] = torch.randn_like(changed[mask])
    changed_c = centres.clone()
    changed_c[mask] += 5.0
    torch.testing.assert_close(method.forward_encoder(changed, changed_c, mask), latent)
    visible = neigh.clone()
    visible[~mask] = torch.randn_like(visible[~mask])
    assert not torch.allclose(method.forward_encoder(visible, centres, mask), latent)


def test_loss_falls_on_fixed_batch():
    torch.manual_seed(0)
    method = tiny()
    batch = pretext_batch(method, clouds(8))
    losses = fit_fixed_batch(method, batch, steps=40, lr=3e-3, reseed=1)
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses


def test_bad_config():
    with pytest.raises(ConfigError):
        GeoMAEConfig(normal_weight=-1.0)
    with pytest.raises(ConfigError):
        GeoMAEConfig(occupancy_resolution=0)
    with pytest.raises(ConfigError, match="mask"):
        tiny(mask_ratio=1.0)(torch.stack(clouds(2)))

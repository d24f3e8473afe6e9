"""Registration: weighted Kabsch against Horn's quaternion solution, the pretraining loss against a naive loop,
the invariance of the backbone, the method's gradients and convergence, and ``register`` end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from ssl_core.errors import CheckpointError, DataError
from ssl_core.testing import without_gradient
from ssl_core.testing.fit import begin_step, fit_fixed_batch, pretext_batch
from ssl_pointcloud.methods.registration import (
    Registration,
    RegistrationConfig,
    RegistrationViews,
    registration_loss,
)
from ssl_pointcloud.models.invariant import BACKBONE_NAME, InvariantConfig, InvariantPointEncoder
from ssl_pointcloud.registration import (
    kabsch_np,
    load_registration_backbone,
    register,
    register_detailed,
    rotation_error_deg,
    weighted_kabsch,
)
from ssl_pointcloud.transforms import random_rotation

TINY = InvariantConfig(k=8, dims=(16, 16), width=16)


def horn_reference(src: torch.Tensor, dst: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Horn (1987)'s closed form, one pair of clouds at a time: the rotation is the quaternion of the largest
    eigenvalue of a 4x4 symmetric matrix built from the weighted cross-covariance (no SVD)."""
    rs, ts = [], []
    for s, d, wi in zip(src, dst, w, strict=True):
        wi = wi / wi.sum()
        cs, cd = (wi[:, None] * s).sum(0), (wi[:, None] * d).sum(0)
        m = torch.zeros(3, 3, dtype=s.dtype)
        for i in range(len(s)):
            m = m + wi[i] * torch.outer(s[i] - cs, d[i] - cd)
        (sxx, sxy, sxz), (syx, syy, syz), (szx, szy, szz) = m
        n = torch.stack(
            [
                torch.stack([sxx + syy + szz, syz - szy, szx - sxz, sxy - syx]),
                torch.stack([syz - szy, sxx - syy - szz, sxy + syx, szx + sxz]),
                torch.stack([szx - sxz, sxy + syx, -sxx + syy - szz, syz + szy]),
                torch.stack([sxy - syx, szx + sxz, syz + szy, -sxx - syy + szz]),
            ]
        )
        q = torch.linalg.eigh(n)[1][:, -1]
        q0, qx, qy, qz = q
        r = torch.stack(
            [
                torch.stack([q0**2 + qx**2 - qy**2 - qz**2, 2 * (qx * qy - q0 * qz), 2 * (qx * qz + q0 * qy)]),
                torch.stack([2 * (qy * qx + q0 * qz), q0**2 - qx**2 + qy**2 - qz**2, 2 * (qy * qz - q0 * qx)]),
                torch.stack([2 * (qz * qx - q0 * qy), 2 * (qz * qy + q0 * qx), q0**2 - qx**2 - qy**2 + qz**2]),
            ]
        )
        rs.append(r)
        ts.append(cd - r @ cs)
    return torch.stack(rs), torch.stack(ts)


def _rot64(g: torch.Generator) -> torch.Tensor:
    """A random rotation in float64 (QR of a Gaussian matrix, determinant +1)."""
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.linalg.det(q) > 0 else -q


def _noisy_pairs(b: int = 3, n: int = 20, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randn(b, n, 3, generator=g, dtype=torch.float64)
    rot = torch.stack([_rot64(g) for _ in range(b)])
    dst = src @ rot.transpose(1, 2) + torch.randn(b, 1, 3, generator=g, dtype=torch.float64)
    dst = dst + 0.1 * torch.randn(b, n, 3, generator=g, dtype=torch.float64)
    w = torch.rand(b, n, generator=g, dtype=torch.float64) + 0.1
    return src, dst, w, rot


def test_kabsch_matches_horn_values_and_gradients():
    src, dst, w, _ = _noisy_pairs()
    r, t = weighted_kabsch(src, dst, w)
    r_ref, t_ref = horn_reference(src, dst, w)
    torch.testing.assert_close(r, r_ref, atol=1e-9, rtol=0)
    torch.testing.assert_close(t, t_ref, atol=1e-9, rtol=0)
    np.testing.assert_allclose(kabsch_np(src.numpy(), dst.numpy(), w.numpy())[0], r_ref.numpy(), atol=1e-9)
    probe_r, probe_t = torch.randn_like(r), torch.randn_like(t)
    grads = []
    for fn in (weighted_kabsch, horn_reference):
        s, d, ww = (x.clone().requires_grad_(True) for x in (src, dst, w))
        rr, tt = fn(s, d, ww)
        ((rr * probe_r).sum() + (tt * probe_t).sum()).backward()
        grads.append((s.grad, d.grad, ww.grad))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-7, rtol=1e-6)


def test_kabsch_recovers_a_known_transform_exactly():
    src, _, w, rot = _noisy_pairs(b=4, n=10, seed=1)
    t_true = torch.tensor([0.5, -2.0, 3.0], dtype=torch.float64)
    dst = src @ rot.transpose(1, 2) + t_true
    # outliers with weight 0 do not count
    dst[:, :2] += 5.0
    w[:, :2] = 0.0
    r, t = weighted_kabsch(src, dst, w)
    torch.testing.assert_close(r, rot, atol=1e-10, rtol=0)
    torch.testing.assert_close(t, t_true.expand(4, 3), atol=1e-10, rtol=0)
    assert torch.allclose(torch.linalg.det(r), torch.ones(4, dtype=torch.float64))
    # a reflection is never returned: mirrored data still gives a proper rotation
    r_m, _ = weighted_kabsch(src, src * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))
    assert torch.allclose(torch.linalg.det(r_m), torch.ones(4, dtype=torch.float64))


def naive_loss(fa, fb, a, b, pos, valid, r_true, t_true, temperature, transform_weight):
    """The registration loss written point by point."""
    nce_sum, count, tl = 0.0, 0, 0.0
    for i in range(fa.shape[0]):
        soft, wts = [], []
        for p in range(fa.shape[1]):
            fpa = fa[i, p] / fa[i, p].norm()
            sims = torch.stack([fpa @ (fb[i, q] / fb[i, q].norm()) for q in range(fb.shape[1])]) / temperature
            probs = torch.exp(sims - sims.max()) / torch.exp(sims - sims.max()).sum()
            if valid[i, p]:
                nce_sum = nce_sum - torch.log(probs[pos[i, p]])
                count += 1
            soft.append((probs[:, None] * b[i]).sum(0))
            wts.append(probs.max())
        r, t = horn_reference(a[i : i + 1], torch.stack(soft)[None], torch.stack(wts)[None])
        tl = tl + ((r[0] - r_true[i]) ** 2).sum() + ((t[0] - t_true[i]) ** 2).sum()
    return nce_sum / max(count, 1) + transform_weight * tl / fa.shape[0]


def test_loss_matches_naive_reference_values_and_gradients():
    g = torch.Generator().manual_seed(2)
    bsz, m, c = 2, 6, 5
    fa = torch.randn(bsz, m, c, generator=g, dtype=torch.float64, requires_grad=True)
    fb = torch.randn(bsz, m, c, generator=g, dtype=torch.float64, requires_grad=True)
    a = torch.randn(bsz, m, 3, generator=g, dtype=torch.float64)
    rot = torch.stack([_rot64(g) for _ in range(bsz)])
    t_true = torch.randn(bsz, 3, generator=g, dtype=torch.float64)
    b = a[:, torch.randperm(m, generator=g)] @ rot.transpose(1, 2) + t_true[:, None]
    pos = torch.randint(0, m, (bsz, m), generator=g)
    valid = torch.rand(bsz, m, generator=g) > 0.3
    args = (a, b, pos, valid, rot, t_true, 0.5, 0.7)
    ours, _ = registration_loss(fa, fb, *args)
    ref = naive_loss(fa, fb, *args)
    torch.testing.assert_close(ours, ref, atol=1e-8, rtol=1e-8)
    g_ours = torch.autograd.grad(ours, (fa, fb))
    g_ref = torch.autograd.grad(ref, (fa, fb))
    for x, y in zip(g_ours, g_ref, strict=True):
        torch.testing.assert_close(x, y, atol=1e-7, rtol=1e-6)


def _cloud(n: int = 256, seed: int = 0) -> torch.Tensor:
    """An asymmetric test shape: an arrow mesh from the data generator, sampled on its surface."""
    from ssl_pointcloud.data.shapes import random_mesh, scan

    rng = np.random.default_rng(seed)
    return torch.from_numpy(scan(random_mesh("arrow", rng), rng, n, partial=False))


def test_backbone_features_are_rotation_and_translation_invariant():
    torch.manual_seed(0)
    net = InvariantPointEncoder(TINY).eval()
    x = torch.stack([_cloud(128, 0), _cloud(128, 1)])
    rot = random_rotation(1, torch.Generator().manual_seed(3))[0]
    with torch.no_grad():
        f1 = net.point_features(x)
        f2 = net.point_features(x @ rot.T + torch.tensor([0.3, -1.0, 2.0]))
    torch.testing.assert_close(f1, f2, atol=1e-4, rtol=1e-4)
    assert net(x).shape == (2, 2 * TINY.width)


def _method_and_batch(seed: int = 0):
    torch.manual_seed(seed)
    method = Registration(RegistrationConfig(backbone=TINY, num_points=48))
    samples = [_cloud(96, s) for s in range(3)]
    batch = pretext_batch(method, samples)
    begin_step(method)
    return method, batch


def test_pretext_views_and_known_motion():
    torch.manual_seed(0)
    x = _cloud(256)
    views = RegistrationViews(num_points=128, noise=0.0, deform=0.0)(x)
    assert views["a"].shape == views["b"].shape == (128, 3)
    r, t = views["R"], views["t"]
    assert torch.allclose(r @ r.T, torch.eye(3), atol=1e-5)
    # without noise and deformation, valid pairs are exactly the same surface point moved by (R, t)
    v = views["valid"]
    a_moved = views["a"][v] @ r.T + t
    b_pair = views["b"][views["pos"][v]]
    assert v.sum() > 10
    assert (a_moved - b_pair).norm(dim=-1).max() < 0.05 + 1e-4


def test_gradients_reach_every_parameter():
    method, batch = _method_and_batch()
    out = method(batch)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    missing = without_gradient(method)
    assert not missing, missing
    zero = [n for n, p in method.backbone.named_parameters() if p.grad.abs().sum() == 0]
    assert not zero, zero
    assert set(out.logs) == {"nce", "transform", "match_acc", "rot_err_deg"}


def test_loss_falls_on_a_fixed_batch():
    method, batch = _method_and_batch(1)
    losses = fit_fixed_batch(method, batch, steps=15, lr=1e-2)
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses


def test_backbone_spec_and_embed():
    method, _ = _method_and_batch()
    spec = method.backbone_spec()
    assert spec.name == BACKBONE_NAME and spec.embed_dim == 2 * TINY.width
    assert method.eval().embed(torch.stack([_cloud(64)])).shape == (1, spec.embed_dim)


@pytest.mark.parametrize("angle", [20.0, 120.0, 180.0])
def test_register_recovers_a_rotated_copy(angle):
    torch.manual_seed(0)
    net = InvariantPointEncoder(TINY).eval()  # untrained: on an exact copy the invariant features still match
    src = _cloud(400, 5).numpy().astype(np.float64) * 3.0 + 10.0  # any units and position
    axis = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    a = math.radians(angle)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rot = np.eye(3) + math.sin(a) * k + (1 - math.cos(a)) * k @ k
    t = np.array([1.0, -2.0, 0.5])
    tgt = src[np.random.default_rng(0).permutation(len(src))] @ rot.T + t
    res = register_detailed(src, tgt, net, num_points=200, ransac_iters=1000)
    assert res.transform.shape == (4, 4)
    assert rotation_error_deg(res.transform[:3, :3], rot) < 0.5
    np.testing.assert_allclose(res.transform[:3, 3], t, atol=0.05)
    np.testing.assert_allclose(res.transform[3], [0, 0, 0, 1])


def test_register_loads_a_run_folder(tmp_path):
    torch.manual_seed(0)
    method = Registration(RegistrationConfig(backbone=TINY, num_points=64))
    spec = method.backbone_spec()
    (tmp_path / "backbone.json").write_text(
        json.dumps({"modality": "pointcloud", "recipe": "pointcloud/registration", "name": spec.name,
                    "config": spec.config, "embed_dim": spec.embed_dim, "input": spec.input})
    )  # fmt: skip
    ckpt = tmp_path / "checkpoints" / "step_00000001"
    ckpt.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in method.state_dict().items()}, str(ckpt / "model.safetensors"))
    net = load_registration_backbone(tmp_path)
    x = _cloud(64)[None]
    with torch.no_grad():
        torch.testing.assert_close(net.point_features(x), method.backbone.eval().point_features(x))
    (tmp_path / "backbone.json").write_text(json.dumps({"name": "pointwise", "config": {}}))
    with pytest.raises(CheckpointError, match="not 'invariant_pointwise'"):
        load_registration_backbone(tmp_path)


def test_register_bad_input(tmp_path, monkeypatch):
    net = InvariantPointEncoder(TINY).eval()
    good = _cloud(64).numpy()
    with pytest.raises(DataError, match="no points"):
        register(np.zeros((0, 3)), good, net)
    bad = good.copy()
    bad[3, 1] = np.nan
    with pytest.raises(DataError, match="non-finite"):
        register(good, bad, net)
    with pytest.raises(DataError, match="fewer than the k=8"):
        register(good[:5], good, net)
    with pytest.raises(DataError, match=r"\(N, 3\)"):
        register(good[:, :2], good, net)
    with pytest.raises(DataError, match="coincide"):
        register(np.ones((20, 3)), good, net)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match="selfsup pretrain pointcloud/registration"):
        register(good, good)

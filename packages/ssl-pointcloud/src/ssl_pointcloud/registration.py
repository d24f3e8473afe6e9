"""Rigid registration of two point clouds with a self-supervised, rotation-invariant point-feature network.

``register(source, target, run)`` returns the ``(4, 4)`` transform ``T`` with ``target ~ T @ source`` (homogeneous
coordinates). The network is pretrained without labels by ``selfsup pretrain pointcloud/registration``
(:mod:`ssl_pointcloud.methods.registration`, the idea of NICP: Marin et al., 2024, a network trained on random
transforms whose predictions are refined at test time with ICP-style steps on its own features).

The pipeline (every step ours unless said otherwise):

1. **Normalise**: both clouds centred on their own centroid and divided by the source's radius (the farthest
   source point from its centroid; one scale for both, so a rigid motion stays rigid); the transform found is
   un-normalised at the end. Each cloud is reduced to ``num_points`` points (a random subset: the density of
   the pretraining views).
2. **Features**: :class:`~ssl_pointcloud.models.invariant.InvariantPointEncoder`, per-point features from
   *rotation- and translation-invariant*
   inputs only (point-pair features of each point with its kNN neighbours, in the spirit of PPFNet:
   distances, angles between PCA normals oriented away from the centroid and the edge, the local PCA shape),
   so a feature does not change when the cloud is rotated, whatever the angle (an xyz network such as DGCNN
   would have to learn this from augmentations, which a CPU budget of minutes does not buy).
3. **Matches and global estimate**: each source point's nearest neighbour in feature space (and each target
   point's, both directions); RANSAC over 3-match samples (``ransac_iters`` hypotheses at once, weighted Kabsch on
   each, scored by the matches within ``inlier_radius``), the best hypotheses re-estimated on their inliers.
4. **Refinement with ICP-style steps on our features** (:func:`feature_icp`): from each of the best RANSAC
   hypotheses *and from the identity* (after centring: the centroids aligned), nearest neighbours in the joint
   space of xyz and features, trimmed, weighted Kabsch, repeated.
5. **Polish** (open3d's, optional, ``final_icp=True``): each candidate goes through
   ``open3d.pipelines.registration.registration_icp`` point-to-plane on all points, with
   ``max_correspondence_distance = inlier_radius``.
6. **Choice** (ours): each candidate's cost is the mean distance of (up to 2,048) source points to the target,
   capped at ``inlier_radius``; among the candidates within ``tie_tolerance`` of the lowest cost, the one with
   the smallest rotation wins. Where the clouds are symmetric (a box, a cylinder) the rotation is only defined up
   to the symmetry and several poses fit equally well: the smallest motion is then the answer (as ICP from the
   identity would give it), not an arbitrary symmetric copy.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ssl_core.errors import CheckpointError, ConfigError, DataError
from ssl_pointcloud.models.invariant import BACKBONE_NAME, build_invariant_pointwise

RECIPE_KEY = "pointcloud/registration"


# ----------------------------------------------------------------------------------------------- geometry


def weighted_kabsch(
    src: torch.Tensor, dst: torch.Tensor, weights: torch.Tensor | None = None, eps: float = 1e-9
) -> tuple[torch.Tensor, torch.Tensor]:
    """The rotation ``R`` and translation ``t`` minimising ``sum_i w_i |R src_i + t - dst_i|^2`` (weighted
    Procrustes / Kabsch, Kabsch 1976; differentiable through the SVD, as in DCP and RPM-Net).

    Args:
        src: source points.
        dst: corresponding destination points.
        weights: non-negative weight per pair (``None``: all 1); they are normalised to sum to 1.
        eps: guards the weight normalisation.

    Shapes:
        - src, dst: ``(B, N, 3)``; weights: ``(B, N)``
        - output: ``R (B, 3, 3)`` (determinant +1), ``t (B, 3)``
    """
    if src.shape != dst.shape or src.ndim != 3 or src.shape[-1] != 3:
        raise ValueError(f"src and dst must both be (B, N, 3), got {tuple(src.shape)} and {tuple(dst.shape)}")
    if weights is None:
        weights = torch.ones(src.shape[:2], dtype=src.dtype, device=src.device)
    w = weights / weights.sum(dim=1, keepdim=True).clamp_min(eps)
    cs = (w[..., None] * src).sum(dim=1)
    cd = (w[..., None] * dst).sum(dim=1)
    h = (src - cs[:, None]).transpose(1, 2) @ (w[..., None] * (dst - cd[:, None]))  # (B, 3, 3)
    u, _, vh = torch.linalg.svd(h)
    v = vh.transpose(1, 2)
    d = torch.sign(torch.linalg.det(v @ u.transpose(1, 2))).detach()
    d = torch.where(d == 0, torch.ones_like(d), d)
    diag = torch.ones(src.shape[0], 3, dtype=src.dtype, device=src.device)
    diag = torch.cat([diag[:, :2], d[:, None]], dim=1)
    r = v @ torch.diag_embed(diag) @ u.transpose(1, 2)
    t = cd - (r @ cs[..., None])[..., 0]
    return r, t


def to_matrix(r: torch.Tensor | np.ndarray, t: torch.Tensor | np.ndarray) -> np.ndarray:
    """``(3, 3)`` rotation and ``(3,)`` translation -> ``(4, 4)`` homogeneous transform (float64 NumPy)."""
    m = np.eye(4)
    m[:3, :3] = np.asarray(r, dtype=np.float64)
    m[:3, 3] = np.asarray(t, dtype=np.float64)
    return m


def rotation_error_deg(r_est: np.ndarray, r_true: np.ndarray) -> float:
    """Angle of ``r_est^T r_true`` in degrees (the geodesic distance on SO(3))."""
    c = (np.trace(np.asarray(r_est).T @ np.asarray(r_true)) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


# ----------------------------------------------------------------------------------------------- model loading


def load_registration_backbone(run: str | os.PathLike | nn.Module | None = None) -> nn.Module:
    """The feature network :func:`register` uses, in evaluation mode.

    Args:
        run: a run folder of ``selfsup pretrain pointcloud/registration`` (its latest checkpoint), an export
            folder of one (``selfsup export``), a module with ``point_features`` (used as is), or ``None``: the
            latest run of ``pointcloud/registration`` under ``runs/``.

    Raises:
        CheckpointError: no run is found, or the folder holds no registration backbone.
    """
    if isinstance(run, nn.Module):
        if not hasattr(run, "point_features"):
            raise ConfigError(f"{type(run).__name__} has no point_features(points) method to match points with")
        return run.eval()
    from safetensors.torch import load_file

    from ssl_core.train.checkpoint import latest_checkpoint

    if run is None:
        from ssl_core.run import find_latest_run

        run = find_latest_run(RECIPE_KEY)
        if run is None:
            raise CheckpointError(
                f"no run of {RECIPE_KEY} under runs/: train one with `uv run selfsup pretrain {RECIPE_KEY}` "
                "(about 4 minutes) or pass run=RUN_FOLDER"
            )
    path = Path(run)
    if (path / "config.json").is_file() and (path / "backbone.safetensors").is_file():  # an export
        spec = json.loads((path / "config.json").read_text())
        state = load_file(str(path / "backbone.safetensors"))
    elif (path / "backbone.json").is_file():  # a run folder
        spec = json.loads((path / "backbone.json").read_text())
        ckpt = latest_checkpoint(path / "checkpoints")
        if ckpt is None:
            raise CheckpointError(f"{path} has no checkpoint yet; let `selfsup pretrain {RECIPE_KEY}` finish")
        full = load_file(str(ckpt / "model.safetensors"))
        state = {k[len("backbone.") :]: v for k, v in full.items() if k.startswith("backbone.")}
    else:
        raise CheckpointError(f"{path} is neither a run folder (backbone.json) nor an export (config.json)")
    if spec.get("name") != BACKBONE_NAME:
        raise CheckpointError(
            f"{path} holds a {spec.get('name')!r} backbone, not {BACKBONE_NAME!r}: pass a run of {RECIPE_KEY}"
        )
    model = build_invariant_pointwise(spec["config"])
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        msg = str(e).splitlines()[0]
        raise CheckpointError(f"the weights in {path} do not fit its backbone config: {msg}") from None
    return model.eval()


# ----------------------------------------------------------------------------------------------- test time


def _as_cloud(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if a.ndim != 2 or a.shape[-1] != 3:
        raise DataError(f"{name} must be an (N, 3) array of points, got shape {a.shape}")
    if len(a) == 0:
        raise DataError(f"{name} holds no points")
    if not np.isfinite(a).all():
        raise DataError(f"{name} holds {int((~np.isfinite(a)).any(1).sum())} non-finite points; drop them first")
    return a


def kabsch_np(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`weighted_kabsch` in NumPy, batched over leading axes (the test-time path: on a CPU the small
    matrices of RANSAC and ICP are faster in NumPy than in torch).

    Shapes:
        - src, dst: ``(..., N, 3)``; weights: ``(..., N)``
        - output: ``R (..., 3, 3)``, ``t (..., 3)``
    """
    w = np.ones(src.shape[:-1]) if weights is None else weights
    w = w / np.maximum(w.sum(-1, keepdims=True), 1e-12)
    cs = (w[..., None] * src).sum(-2)
    cd = (w[..., None] * dst).sum(-2)
    h = np.swapaxes(src - cs[..., None, :], -1, -2) @ (w[..., None] * (dst - cd[..., None, :]))
    u, _, vh = np.linalg.svd(h)
    v = np.swapaxes(vh, -1, -2)
    d = np.sign(np.linalg.det(v @ np.swapaxes(u, -1, -2)))
    d = np.where(d == 0, 1.0, d)
    diag = np.ones(h.shape[:-1])
    diag[..., 2] = d
    r = (v * diag[..., None, :]) @ np.swapaxes(u, -1, -2)
    t = cd - (r @ cs[..., None])[..., 0]
    return r, t


def ransac(
    src: np.ndarray,
    dst: np.ndarray,
    iters: int,
    radius: float,
    rng: np.random.Generator,
    keep: int = 4,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The best ``keep`` distinct rigid transforms over putative matches ``src[i] <-> dst[i]``: ``iters`` random
    3-match samples (rejected when the sides' pairwise distances differ by more than 10% or are shorter than
    ``radius``), a Kabsch fit on each, scored by the matches within ``radius``; each kept hypothesis re-fitted on
    its inliers (hypotheses within 10 degrees of a better one are skipped).

    Shapes:
        - src, dst: ``(M, 3)`` float64, ``M >= 3``
        - output: list of ``(R (3, 3), t (3,))``
    """
    m = len(src)
    s = rng.integers(0, m, (iters, 3))
    ps, pd = src[s], dst[s]  # (H, 3, 3)
    ls = np.linalg.norm(ps - ps[:, [1, 2, 0]], axis=-1)
    ld = np.linalg.norm(pd - pd[:, [1, 2, 0]], axis=-1)
    ok = (np.abs(ls - ld) <= 0.1 * np.maximum(ls, ld)).all(-1) & (ls.min(-1) > radius)
    if ok.sum() < keep:
        ok[:] = True
    r, t = kabsch_np(ps[ok], pd[ok])
    err = np.linalg.norm(np.einsum("hij,mj->hmi", r, src) + t[:, None] - dst[None], axis=-1)  # (H, M)
    inl = err < radius
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for h in np.argsort(-inl.sum(1), kind="stable")[: 8 * keep]:
        mask = inl[h]
        rh, th = kabsch_np(src[mask], dst[mask]) if mask.sum() >= 3 else (r[h], t[h])
        if all(rotation_error_deg(rh, o[0]) > 10 for o in out):
            out.append((rh, th))
        if len(out) == keep:
            break
    return out


def feature_icp(
    src: np.ndarray,
    tgt: np.ndarray,
    fs: np.ndarray,
    ft: np.ndarray,
    r: np.ndarray,
    t: np.ndarray,
    iters: int = 30,
    feature_weight: float = 0.05,
    trim: float = 0.8,
    candidates: int = 8,
    tree: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """ICP-style refinement on xyz and our features: each transformed source point takes, among its
    ``candidates`` nearest target points in xyz, the one minimising ``|x - y|^2 + feature_weight * |f_x - f_y|^2``
    (features L2-normalised); the ``trim`` share of pairs with the lowest cost is kept; Kabsch; repeated
    ``iters`` times or until the update is below 1e-7.

    Shapes:
        - src ``(N, 3)``, tgt ``(M, 3)``, fs ``(N, C)``, ft ``(M, C)``; r ``(3, 3)``, t ``(3,)``
        - output: refined ``(R, t)``
    """
    from scipy.spatial import cKDTree

    tree = tree if tree is not None else cKDTree(tgt)
    c = min(candidates, len(tgt))
    keep = max(3, int(trim * len(src)))
    rows = np.arange(len(src))
    for _ in range(iters):
        x = src @ r.T + t
        d, idx = tree.query(x, c)
        d, idx = d.reshape(len(src), c), idx.reshape(len(src), c)
        cost = d**2 + feature_weight * ((fs[:, None] - ft[idx]) ** 2).sum(-1)
        best = cost.argmin(1)
        pick, cbest = idx[rows, best], cost[rows, best]
        sel = np.argsort(cbest, kind="stable")[:keep]
        dr, dt = kabsch_np(x[sel], tgt[pick[sel]])
        r, t = dr @ r, dr @ t + dt
        if np.abs(dr - np.eye(3)).max() < 1e-7 and np.abs(dt).max() < 1e-7:
            break
    return r, t


@dataclass
class RegisterResult:
    """What :func:`register_detailed` finds: the ``(4, 4)`` transform, its inlier share (fitness) and RMSE in the
    input units, which start won (``"identity"`` or ``"ransac<i>"``), and every candidate as
    ``(start, cost, transform in normalised units)``."""

    transform: np.ndarray
    fitness: float
    rmse: float
    start: str
    candidates: list[tuple[str, float, np.ndarray]]


def register_detailed(
    source: Any,
    target: Any,
    run: str | os.PathLike | nn.Module | None = None,
    *,
    num_points: int = 256,
    ransac_iters: int = 8000,
    hypotheses: int = 8,
    inlier_radius: float = 0.05,
    icp_iters: int = 30,
    feature_weight: float = 0.05,
    final_icp: bool = True,
    tie_tolerance: float = 0.01,
    seed: int = 0,
) -> RegisterResult:
    """:func:`register` with its score and the winning start (see the module docstring for the steps).

    Args:
        source, target: the clouds.
        run: the feature network (see :func:`load_registration_backbone`).
        num_points: points kept per cloud (a seeded random subset, the density the network was pretrained at) for
            features, RANSAC and our ICP.
        ransac_iters: RANSAC hypotheses.
        hypotheses: best RANSAC hypotheses refined (plus the identity).
        inlier_radius: inlier distance, in units of the source's radius.
        icp_iters: iterations of :func:`feature_icp` per start.
        feature_weight: weight of the feature distance in :func:`feature_icp`.
        final_icp: polish every candidate with open3d's point-to-plane ICP on all points (module docstring).
        tie_tolerance: candidates whose cost is within this share of the best one count as ties (a symmetric
            shape fits several poses); the one with the smallest rotation angle wins.
        seed: RANSAC's draws.

    Shapes:
        - source ``(N, 3)``, target ``(M, 3)`` (arrays or tensors, any units)
    """
    src_all = _as_cloud(source, "source")
    tgt_all = _as_cloud(target, "target")
    model = load_registration_backbone(run)
    k = getattr(getattr(model, "config", None), "k", 16)
    for name, a in (("source", src_all), ("target", tgt_all)):
        if len(a) < max(k, 3):
            raise DataError(f"{name} has {len(a)} points, fewer than the k={k} neighbours the features need")
    cs, ct = src_all.mean(0), tgt_all.mean(0)
    scale = float(np.linalg.norm(src_all - cs, axis=1).max())
    if not scale > 1e-12:
        raise DataError("source: all its points coincide (zero extent), so there is no rotation to find")
    s_full = torch.from_numpy((src_all - cs) / scale)
    t_full = torch.from_numpy((tgt_all - ct) / scale)

    sub_rng = np.random.default_rng(seed)

    def subsample(x: torch.Tensor) -> torch.Tensor:  # a random subset, as in pretraining (same density)
        if len(x) <= num_points:
            return x
        return x[torch.from_numpy(sub_rng.choice(len(x), num_points, replace=False))]

    src, tgt = subsample(s_full), subsample(t_full)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a few hundred points: one thread is faster, many times so on a busy machine
    try:
        with torch.no_grad():
            param = next(model.parameters(), None)
            dev = param.device if param is not None else torch.device("cpu")
            fs, ft = (
                nn.functional.normalize(model.point_features(x[None].float().to(dev))[0], dim=-1).double().cpu()
                for x in (src, tgt)
            )
    finally:
        torch.set_num_threads(threads)
    from scipy.spatial import cKDTree

    fs, ft, src, tgt = fs.numpy(), ft.numpy(), src.numpy(), tgt.numpy()
    tree = cKDTree(tgt)
    sim = fs @ ft.T
    s2t, t2s = sim.argmax(1), sim.argmax(0)
    m_src = np.concatenate([src, src[t2s]])
    m_dst = np.concatenate([tgt[s2t], tgt])
    rng = np.random.default_rng(seed)
    starts = [("identity", np.eye(3), np.zeros(3))]
    for i, (r, t) in enumerate(ransac(m_src, m_dst, ransac_iters, inlier_radius, rng, hypotheses)):
        starts.append((f"ransac{i}", r, t))

    # candidates scored on up to 2,048 points of the full clouds: the mean distance to the target, capped
    s_eval = s_full.numpy()
    if len(s_eval) > 2048:
        s_eval = s_eval[rng.choice(len(s_eval), 2048, replace=False)]
    full_tree = cKDTree(t_full.numpy())
    polish = None
    if final_icp:
        import open3d as o3d

        reg = o3d.pipelines.registration
        ps, pt = o3d.geometry.PointCloud(), o3d.geometry.PointCloud()
        ps.points = o3d.utility.Vector3dVector(s_full.numpy())
        pt.points = o3d.utility.Vector3dVector(t_full.numpy())
        pt.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(k))
        est = reg.TransformationEstimationPointToPlane()

        def polish(m: np.ndarray) -> np.ndarray:
            return np.asarray(reg.registration_icp(ps, pt, inlier_radius, m, est).transformation).copy()

    cands = []
    for name, r, t in starts:
        r, t = feature_icp(src, tgt, fs, ft, r, t, icp_iters, feature_weight, tree=tree)
        m = to_matrix(r, t)
        if polish is not None:
            m = polish(m)
        d, _ = full_tree.query(s_eval @ m[:3, :3].T + m[:3, 3])
        cost = float(np.minimum(d, inlier_radius).mean())
        cands.append((cost, rotation_error_deg(m[:3, :3], np.eye(3)), name, m, d))
    # the best fit; among fits within tie_tolerance of it (symmetric shapes), the smallest rotation
    best_cost = min(c[0] for c in cands)
    cost, _, name, m, d = min((c for c in cands if c[0] <= best_cost * (1 + tie_tolerance)), key=lambda c: c[1])
    inl = d < inlier_radius
    fit = float(inl.mean())
    rmse = float(np.sqrt(np.mean(d[inl] ** 2))) if inl.any() else float("inf")
    # un-normalise: x_n = (x - cs) / scale, y_n = (y - ct) / scale, y_n = R x_n + t_n
    # => y = R x + (ct + scale t_n - R cs)
    out = np.eye(4)
    out[:3, :3] = m[:3, :3]
    out[:3, 3] = ct + scale * m[:3, 3] - m[:3, :3] @ cs
    return RegisterResult(out, fit, rmse * scale, name, [(c[2], c[0], c[3]) for c in cands])


def register(source: Any, target: Any, run: str | os.PathLike | nn.Module | None = None, **options: Any) -> np.ndarray:
    """The rigid transform taking ``source`` onto ``target``: ``target ~ (T[:3, :3] @ source.T).T + T[:3, 3]``.

    Args:
        source, target: ``(N, 3)`` and ``(M, 3)`` clouds (NumPy arrays or tensors, any units; they need not have the
            same points or the same number of them).
        run: a run folder of ``selfsup pretrain pointcloud/registration``, its export, the backbone module itself,
            or ``None`` for the latest such run under ``runs/`` (an error names the command when there is none).
        options: see :func:`register_detailed` (``num_points``, ``ransac_iters``, ``inlier_radius``,
            ``final_icp``, ...).

    Raises:
        DataError: an empty cloud, non-finite coordinates, fewer points than the network's ``k``.

    Shapes:
        - output: ``(4, 4)`` float64
    """
    return register_detailed(source, target, run, **options).transform


__all__ = [
    "RegisterResult",
    "feature_icp",
    "load_registration_backbone",
    "kabsch_np",
    "ransac",
    "register",
    "register_detailed",
    "rotation_error_deg",
    "to_matrix",
    "weighted_kabsch",
]

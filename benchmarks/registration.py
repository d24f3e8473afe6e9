"""Rigid registration: ``ssl_pointcloud.registration.register`` against open3d's ICP (and FPFH + RANSAC).

Pairs (deterministic, ``--pairs`` per angle, the same pairs for every method, one run): pair ``p`` of angle ``a``
draws from ``SeedSequence(seed, spawn_key=(a, p))`` a mesh of class ``SHAPES[p % 12]``
(``ssl_pointcloud.data.shapes.random_mesh``: deformed, scaled, rotated open3d primitives); source and target
are two independent uniform samples of 1,024 points of its surface (no shared points), both centred on the
mesh's vertex mean and divided by its radius (unit-sphere units); the target is then rotated by exactly ``a``
degrees about a uniformly random axis, translated by a random vector of norm U(0.05, 0.2), and jittered
(Gaussian, std 0.005).

Metrics: rotation error (the angle of ``R_est^T R_true``, degrees), translation error (``|t_est - t_true|``, in
units of the shape's radius), success = rotation error < 5 degrees and translation error < 0.05; and, since
symmetric shapes (box, sphere, cylinder, octahedron...) fit several poses, a symmetry-aware ``aligned`` rate: the
mean distance of the source moved by the estimate to the nearest point of the source moved by the true transform
is below 0.02. Medians and rates over the pairs; time = median wall time per pair.

Methods:

- ``register``: ours (feature matches of the self-supervised invariant network, RANSAC, feature-ICP, open3d
  point-to-plane polish; see ``ssl_pointcloud.registration``) with the network of ``--run`` (default: the latest
  ``runs/pointcloud-registration-*``); ``--random-init`` adds the same pipeline with an untrained network.
- ``icp_point_to_point`` / ``icp_point_to_plane``: ``open3d.pipelines.registration.registration_icp`` from the
  identity, ``max_correspondence_distance = 0.2``, at most 100 iterations (target normals: 16 nearest
  neighbours).
- ``fpfh_ransac_icp`` (reference): open3d FPFH (radius 0.25, 100 neighbours max) on 0.05-voxel clouds,
  ``registration_ransac_based_on_feature_matching`` (distance 0.075, 100,000 iterations, confidence 0.999), then
  point-to-plane ICP (distance 0.05).

    uv run python benchmarks/registration.py --run runs/pointcloud-registration-<date>-<time>
"""

from __future__ import annotations

import argparse
import sys
import time

import _harness as h
import numpy as np

ANGLES = (15, 45, 90, 180)


def make_pair(angle: float, p: int, seed: int, num_points: int = 1024):
    """``(source, target, T_true)`` of pair ``p`` at ``angle`` degrees (see the module docstring)."""
    import open3d as o3d

    from ssl_pointcloud.data.shapes import SHAPES, random_mesh

    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(int(angle), p)))
    mesh = random_mesh(SHAPES[p % len(SHAPES)], rng)
    v = np.asarray(mesh.vertices)
    c = v.mean(0)
    radius = float(np.linalg.norm(v - c, axis=1).max())

    tri = v[np.asarray(mesh.triangles)]  # (F, 3, 3)
    area = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)

    def sample() -> np.ndarray:  # uniform on the surface: area-weighted triangles, uniform barycentric points
        f = rng.choice(len(tri), num_points, p=area / area.sum())
        u, w = rng.random((2, num_points, 1))
        flip = (u + w) > 1
        u, w = np.where(flip, 1 - u, u), np.where(flip, 1 - w, w)
        pts = tri[f, 0] + u * (tri[f, 1] - tri[f, 0]) + w * (tri[f, 2] - tri[f, 0])
        return (pts - c) / radius

    src, tgt = sample(), sample()
    axis = rng.standard_normal(3)
    axis /= np.linalg.norm(axis)
    rot = o3d.geometry.get_rotation_matrix_from_axis_angle(axis * np.radians(angle))
    direction = rng.standard_normal(3)
    t = direction / np.linalg.norm(direction) * rng.uniform(0.05, 0.2)
    tgt = tgt @ rot.T + t + rng.normal(0, 0.005, tgt.shape)
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = rot, t
    return src, tgt, m


def _pcd(x: np.ndarray):
    import open3d as o3d

    p = o3d.geometry.PointCloud()
    p.points = o3d.utility.Vector3dVector(x)
    return p


def icp(src: np.ndarray, tgt: np.ndarray, plane: bool) -> np.ndarray:
    import open3d as o3d

    reg = o3d.pipelines.registration
    ps, pt = _pcd(src), _pcd(tgt)
    est = reg.TransformationEstimationPointToPoint()
    if plane:
        pt.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(16))
        est = reg.TransformationEstimationPointToPlane()
    crit = reg.ICPConvergenceCriteria(max_iteration=100)
    return np.asarray(reg.registration_icp(ps, pt, 0.2, np.eye(4), est, crit).transformation)


def fpfh_ransac_icp(src: np.ndarray, tgt: np.ndarray, seed: int) -> np.ndarray:
    import open3d as o3d

    o3d.utility.random.seed(seed)
    reg = o3d.pipelines.registration
    voxel = 0.05

    def prep(x):
        p = _pcd(x).voxel_down_sample(voxel)
        p.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=2 * voxel, max_nn=30))
        f = reg.compute_fpfh_feature(p, o3d.geometry.KDTreeSearchParamHybrid(radius=5 * voxel, max_nn=100))
        return p, f

    (ps, fs), (pt, ft) = prep(src), prep(tgt)
    dist = 1.5 * voxel
    res = reg.registration_ransac_based_on_feature_matching(
        ps, pt, fs, ft, True, dist, reg.TransformationEstimationPointToPoint(False), 3,
        [reg.CorrespondenceCheckerBasedOnEdgeLength(0.9), reg.CorrespondenceCheckerBasedOnDistance(dist)],
        reg.RANSACConvergenceCriteria(100000, 0.999),
    )  # fmt: skip
    full_s, full_t = _pcd(src), _pcd(tgt)
    full_t.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(16))
    out = reg.registration_icp(full_s, full_t, voxel, res.transformation, reg.TransformationEstimationPointToPlane())
    return np.asarray(out.transformation)


def overlay(src: np.ndarray, est: np.ndarray, true: np.ndarray) -> float:
    """Mean distance of ``src`` moved by ``est`` to the nearest point of ``src`` moved by ``true`` (symmetry-aware)."""
    from scipy.spatial import cKDTree

    d, _ = cKDTree(src @ true[:3, :3].T + true[:3, 3]).query(src @ est[:3, :3].T + est[:3, 3])
    return float(d.mean())


def errors(est: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    from ssl_pointcloud.registration import rotation_error_deg

    return rotation_error_deg(est[:3, :3], true[:3, :3]), float(np.linalg.norm(est[:3, 3] - true[:3, 3]))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=None, help="run folder of selfsup pretrain pointcloud/registration")
    ap.add_argument("--pairs", type=int, default=20, help="pairs per angle")
    ap.add_argument("--angles", type=float, nargs="+", default=list(ANGLES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--random-init", action="store_true", help="add register with an untrained network")
    ap.add_argument("--no-fpfh", action="store_true", help="skip the FPFH + RANSAC reference")
    ap.add_argument("--name", default="registration", help="results/<name>.md")
    args = ap.parse_args(argv)

    import torch

    from ssl_pointcloud.models.invariant import InvariantPointEncoder
    from ssl_pointcloud.registration import load_registration_backbone, register

    torch.set_num_threads(2)
    machine = h.machine_line()
    model = load_registration_backbone(args.run)
    methods = {"register": lambda s, t, p: register(s, t, model, seed=p)}
    if args.random_init:
        torch.manual_seed(0)
        rand = InvariantPointEncoder(model.config).eval()
        methods["register_random_init"] = lambda s, t, p: register(s, t, rand, seed=p)
    methods["icp_point_to_point"] = lambda s, t, p: icp(s, t, plane=False)
    methods["icp_point_to_plane"] = lambda s, t, p: icp(s, t, plane=True)
    if not args.no_fpfh:
        methods["fpfh_ransac_icp"] = lambda s, t, p: fpfh_ransac_icp(s, t, p)

    results: dict[str, dict[str, list]] = {}
    for angle in args.angles:
        for p in range(args.pairs):
            src, tgt, true = make_pair(angle, p, args.seed)
            for name, fn in methods.items():
                t0 = time.perf_counter()
                est = fn(src, tgt, p)
                wall = time.perf_counter() - t0
                re, te = errors(est, true)
                results.setdefault(f"{name}@{angle:g}", {"rot": [], "trans": [], "overlay": [], "time": []})
                r = results[f"{name}@{angle:g}"]
                r["rot"].append(re), r["trans"].append(te), r["time"].append(wall)
                r["overlay"].append(overlay(src, est, true))
        print(f"angle {angle:g} done", file=sys.stderr, flush=True)

    header = ["method", "angle", "success", "aligned", "rot. err. median (deg)", "rot. err. mean", "trans. err. median",
              "time / pair (ms)"]  # fmt: skip
    rows = []
    for name in methods:
        for angle in args.angles:
            r = results[f"{name}@{angle:g}"]
            rot, trans = np.array(r["rot"]), np.array(r["trans"])
            ok = (rot < 5) & (trans < 0.05)
            al = np.array(r["overlay"]) < 0.02
            rows.append([
                name, f"{angle:g}", f"{ok.mean():.0%} ({ok.sum()}/{len(ok)})", f"{al.mean():.0%}",
                f"{np.median(rot):.2f}", f"{rot.mean():.1f}", f"{np.median(trans):.4f}",
                f"{1000 * np.median(r['time']):.0f}",
            ])  # fmt: skip
    table = h.markdown_table(header, rows)
    md = (
        f"# Registration: register vs open3d ICP\n\n{machine}\n\nnetwork: {args.run or 'latest run'}; "
        f"{args.pairs} pairs per angle, seed {args.seed}\n\n{table}\n"
    )
    print(md)
    h.write(args.name, md, {"args": vars(args), "results": results})


if __name__ == "__main__":
    main()

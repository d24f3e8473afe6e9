"""Point-cloud operators on CPU: ours vs open3d vs naive torch (time, peak memory, agreement).

- FPS: 8 clouds x 8,192 points -> 1,024 samples, start index 0.
- kNN: k = 32 neighbours of 1,024 query points (the first 1,024 of each cloud) among 8 x 8,192 points.
- Chamfer distance, forward + backward (open3d: forward only, it has no gradient), two clouds of 8 x 2,048
  and of 8 x 16,384 points.
- Point-MAE training step (``ssl_pointcloud.methods.point_mae``, default config: 64 groups of 32 points, 60%
  masked) on 32 clouds x 1,024 points: forward, backward and AdamW step. ``ours`` is the method as it is, on the
  core kernels (farthest_point_sampling and knn ``auto``, chamfer_distance ``chunked``: see
  ``point_mae.CHAMFER_IMPL``); ``naive_torch`` is the same model and inputs with the naive FPS below (a Python
  loop over clouds), kNN by ``torch.cdist`` + ``topk`` and a dense ``torch.cdist`` Chamfer.

Uniform random clouds in the unit cube, seeded; each (operator, implementation, size) in a fresh process
(see _harness.py); open3d rows include the torch -> numpy -> open3d conversion, as a user would pay it.

    uv run python benchmarks/points.py
"""

from __future__ import annotations

import argparse
import os
import sys

import _harness as h

B = 8
CONFIGS = {
    # op: (implementations, sizes)
    "fps": (["ours_auto", "ours_torch", "open3d", "naive_torch"], [8192]),
    "knn": (["ours_auto", "ours_chunked", "open3d_nns", "open3d_kdtreeflann", "naive_torch"], [8192]),
    "chamfer": (["ours_auto", "ours_chunked", "open3d", "naive_torch"], [2048, 16384]),
    "pmae": (["ours", "naive_torch"], [1024]),
}
PMAE_B = 32  # clouds per Point-MAE training step
FPS_SAMPLES, KNN_QUERIES, KNN_K = 1024, 1024, 32
# naive torch Chamfer keeps ~5 (B, N, N) float32 buffers alive (peer-benchmarks.md)
NAIVE_CHAMFER_BYTES = lambda n: 5 * B * n * n * 4  # noqa: E731


def clouds(n, seed):
    import torch

    return torch.rand(B, n, 3, generator=torch.Generator().manual_seed(seed))


# ---- the implementations ---------------------------------------------------------------------------------


def naive_fps(points, n_samples):
    """The loop as one writes it first: one cloud at a time, torch ops, argmax per step."""
    import torch

    out = []
    for cloud in points:
        dist = torch.full((cloud.shape[0],), float("inf"))
        far, chosen = 0, []
        for _ in range(n_samples):
            chosen.append(far)
            dist = torch.minimum(dist, ((cloud - cloud[far]) ** 2).sum(-1))
            far = int(dist.argmax())
        out.append(torch.tensor(chosen))
    return torch.stack(out)


def open3d_fps(points, n_samples):
    """Sampled points per cloud (open3d returns points in index order, not indices)."""
    import numpy as np
    import open3d as o3d

    return [
        np.asarray(
            o3d.geometry.PointCloud(o3d.utility.Vector3dVector(c.double().numpy()))
            .farthest_point_down_sample(n_samples, 0)
            .points
        )
        for c in points
    ]


def open3d_knn_nns(query, points, k):
    import numpy as np
    import open3d as o3d

    out = []
    for q, p in zip(query, points, strict=True):
        nns = o3d.core.nns.NearestNeighborSearch(o3d.core.Tensor.from_numpy(p.numpy()))
        nns.knn_index()
        idx, _ = nns.knn_search(o3d.core.Tensor.from_numpy(q.numpy()), k)
        out.append(idx.numpy().astype(np.int64))
    return np.stack(out)


def open3d_knn_flann(query, points, k):
    import numpy as np
    import open3d as o3d

    out = []
    for q, p in zip(query, points, strict=True):
        tree = o3d.geometry.KDTreeFlann(o3d.geometry.PointCloud(o3d.utility.Vector3dVector(p.double().numpy())))
        out.append([np.asarray(tree.search_knn_vector_3d(x, k)[1]) for x in q.double().numpy()])
    return np.asarray(out, dtype=np.int64)


def naive_knn(query, points, k):
    import torch

    return torch.cdist(query, points).topk(k, dim=2, largest=False).indices


def naive_chamfer(x, y):
    import torch

    d = torch.cdist(x, y) ** 2
    return d.min(2).values.mean(1) + d.min(1).values.mean(1)


def open3d_chamfer(x, y):
    import numpy as np
    import open3d as o3d

    values = []
    for a, b in zip(x, y, strict=True):
        pa = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(a.double().numpy()))
        pb = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(b.double().numpy()))
        values.append(
            (np.asarray(pa.compute_point_cloud_distance(pb)) ** 2).mean()
            + (np.asarray(pb.compute_point_cloud_distance(pa)) ** 2).mean()
        )
    return np.asarray(values)


def pmae_step(impl: str, n: int) -> dict:
    """Time Point-MAE training steps on ``PMAE_B`` clouds of ``n`` points with ``impl``'s point operators."""
    import torch

    import ssl_pointcloud.methods.point_mae as point_mae
    import ssl_pointcloud.models.tokens as tokens
    from ssl_core.testing import pretext_batch
    from ssl_pointcloud.info import PointInfo

    if impl == "naive_torch":  # the same model, its point operators swapped for the naive ones
        tokens.farthest_point_sampling = naive_fps
        tokens.knn = lambda q, p, k: (None, naive_knn(q, p, k))
        point_mae.chamfer_distance = lambda x, y, impl=None: naive_chamfer(x, y)
    torch.manual_seed(0)
    method = point_mae.PointMAE(point_mae.PointMAEConfig(), PointInfo(num_points=n))
    opt = torch.optim.AdamW(method.parameters(), lr=1e-4)
    batch = pretext_batch(method, list(torch.rand(PMAE_B, n, 3, generator=torch.Generator().manual_seed(4)) * 2 - 1))

    def step():
        loss = method(batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    small = {k: v[:2] for k, v in batch.items()}
    method(small).loss.backward()  # warm-up
    opt.zero_grad(set_to_none=True)
    result = h.measure(step, 3)
    result["agreement"] = f"first-step loss {result.pop('value'):.6f}"
    return result


# ---- one configuration in a child process ----------------------------------------------------------------


def run(spec: dict) -> dict:
    import numpy as np

    from ssl_core.kernels import chamfer_distance, farthest_point_sampling, knn

    op, impl, n = spec["op"], spec["impl"], spec["n"]
    if op == "pmae":
        return pmae_step(impl, n)
    if op == "fps":
        points = clouds(n, 0)
        fn = {
            "ours_auto": lambda p, s: farthest_point_sampling(p, s),
            "ours_torch": lambda p, s: farthest_point_sampling(p, s, impl="torch"),
            "open3d": open3d_fps,
            "naive_torch": naive_fps,
        }[impl]
        fn(points[:, :64], 8)  # warm-up
        result = h.measure(lambda: fn(points, FPS_SAMPLES), 5 if impl != "naive_torch" else 3)
        theirs = open3d_fps(points, FPS_SAMPLES)
        got = result.pop("value")
        if impl == "open3d":
            same = len(theirs)
        else:
            same = sum(
                np.array_equal(np.sort(cloud[idx].double().numpy(), 0), np.sort(ref, 0))
                for cloud, idx, ref in zip(points, got, theirs, strict=True)
            )
        result["agreement"] = f"same set as open3d: {same}/{B} clouds"
        return result
    if op == "knn":
        points = clouds(n, 1)
        query = points[:, :KNN_QUERIES].contiguous()
        fn = {
            "ours_auto": lambda q, p: knn(q, p, KNN_K)[1],
            "ours_chunked": lambda q, p: knn(q, p, KNN_K, impl="chunked")[1],
            "open3d_nns": lambda q, p: open3d_knn_nns(q, p, KNN_K),
            "open3d_kdtreeflann": lambda q, p: open3d_knn_flann(q, p, KNN_K),
            "naive_torch": lambda q, p: naive_knn(q, p, KNN_K),
        }[impl]
        fn(query[:, :16], points[:, :64])  # warm-up
        result = h.measure(lambda: fn(query, points), 5)
        got = np.asarray(result.pop("value"))
        theirs = open3d_knn_nns(query, points, KNN_K)
        # as sets per query: the order of neighbours at equal distance is arbitrary
        same = (np.sort(got, -1) == np.sort(theirs, -1)).mean()
        result["agreement"] = f"{same:.4%} of neighbour indices equal to open3d_nns"
        return result
    # chamfer
    x, y = clouds(n, 2), clouds(n, 3)

    def with_grad(fn):
        def call():
            a, b = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
            value = fn(a, b)
            value.sum().backward()
            return value.detach().numpy()

        return call

    call = {
        "ours_auto": with_grad(chamfer_distance),
        "ours_chunked": with_grad(lambda a, b: chamfer_distance(a, b, impl="chunked")),
        "naive_torch": with_grad(naive_chamfer),
        "open3d": lambda: open3d_chamfer(x, y),
    }[impl]
    chamfer_distance(x[:, :32], y[:, :32])  # warm-up
    result = h.measure(call, 5 if n <= 2048 or impl in ("ours_auto", "open3d") else 1)
    ref = open3d_chamfer(x, y)
    got = np.asarray(result.pop("value"))
    result["agreement"] = f"mean {got.mean():.6f}, max rel. diff to open3d {np.abs(got / ref - 1).max():.1e}"
    if impl == "open3d":
        result["agreement"] += " (forward only: no gradient)"
    return result


# ---- the table -------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--max-gib", type=float, default=8.0, help="skip configurations estimated above this")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per configuration")
    parser.add_argument("--name", default="points", help="results/<name>.md and .json")
    args = parser.parse_args()
    machine = h.machine_line()
    rows, results = [], {}
    for op in args.ops:
        impls, sizes = CONFIGS[op]
        for n in sizes:
            for impl in impls:
                need = NAIVE_CHAMFER_BYTES(n) / 2**30 if (op, impl) == ("chamfer", "naive_torch") else 0
                if need > args.max_gib:
                    r = {"status": f"skipped (≈{need:,.0f} GiB)"}
                else:
                    r = h.run_child(__file__, {"op": op, "impl": impl, "n": n}, args.timeout, args.max_gib + 2)
                results[f"{op}/{impl}/{n}"] = r
                print(f"{op} {impl} n={n}: {r}", file=sys.stderr, flush=True)
                label = f"Point-MAE step ({PMAE_B} x {n:,})" if op == "pmae" else f"{op} ({B} x {n:,})"
                rows.append([label, impl, h.fmt_ms(r), h.fmt_mib(r), r.get("agreement", "–")])
    out = [
        "# Point-cloud operators, CPU float32",
        "",
        f"`{' '.join(['uv run python benchmarks/points.py', *sys.argv[1:]])}` on {machine}; "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'PASSIVE')}. FPS: {FPS_SAMPLES:,} samples; kNN: "
        f"k={KNN_K}, {KNN_QUERIES:,} queries per cloud; Chamfer: forward + backward; Point-MAE step: forward, "
        "backward and AdamW step of the default model (same initialisation and batch for both rows).",
        "",
        h.markdown_table(["op", "impl", "median ms (CPU ms)", "peak extra MiB", "agreement"], rows),
        "",
        "**Ratios (same run)**",
        "",
    ]

    def cell(op, impl, n):
        return results.get(f"{op}/{impl}/{n}")

    ratio_rows = [
        ["FPS ours / open3d", h.ratio(cell("fps", "ours_auto", 8192), cell("fps", "open3d", 8192), "ms")],
        ["FPS naive torch / ours", h.ratio(cell("fps", "naive_torch", 8192), cell("fps", "ours_auto", 8192), "ms")],
        ["kNN ours / open3d_nns", h.ratio(cell("knn", "ours_auto", 8192), cell("knn", "open3d_nns", 8192), "ms")],
        [
            "kNN ours / open3d_kdtreeflann",
            h.ratio(cell("knn", "ours_auto", 8192), cell("knn", "open3d_kdtreeflann", 8192), "ms"),
        ],
        [
            "Chamfer 2,048 naive torch / ours, memory",
            h.ratio(cell("chamfer", "naive_torch", 2048), cell("chamfer", "ours_auto", 2048), "peak_mib"),
        ],
        [
            "Point-MAE step naive torch / ours, time",
            h.ratio(cell("pmae", "naive_torch", 1024), cell("pmae", "ours", 1024), "ms"),
        ],
        [
            "Point-MAE step naive torch / ours, memory",
            h.ratio(cell("pmae", "naive_torch", 1024), cell("pmae", "ours", 1024), "peak_mib"),
        ],
    ]
    out.append(h.markdown_table(["comparison", "ratio"], ratio_rows))
    out += ["", "**Acceptance (this run)**", ""] + acceptance(cell)
    text = "\n".join(out) + "\n"
    path = h.write(args.name, text, {"machine": machine, "argv": sys.argv[1:], "results": results})
    print(text)
    print(f"written to {path}", file=sys.stderr)


def acceptance(cell) -> list[str]:
    def ok(r):
        return r is not None and r.get("status") == "ok"

    lines = []
    ours, theirs = cell("fps", "ours_auto", 8192), cell("fps", "open3d", 8192)
    if ok(ours) and ok(theirs):
        r = ours["ms"] / theirs["ms"]
        same = ours["agreement"].endswith(f"{B}/{B} clouds")
        verdict = _verdict(same and r <= 1.5)
        lines.append(f"- FPS: {ours['agreement']}, time ratio to open3d {r:.2f} (<= 1.5) -> {verdict}")
    ours, theirs = cell("knn", "ours_auto", 8192), cell("knn", "open3d_nns", 8192)
    if ok(ours) and ok(theirs):
        r = ours["ms"] / theirs["ms"]
        lines.append(f"- kNN: time ratio to open3d (core NNS) {r:.2f} (<= 1.5) -> {_verdict(r <= 1.5)}")
    ours = cell("chamfer", "ours_auto", 16384)
    if ours is not None:
        got = f"{ours['peak_mib']:,.1f} MiB" if ok(ours) else ours.get("status")
        verdict = _verdict(ok(ours) and ours["peak_mib"] <= 256)
        lines.append(f"- Chamfer with gradients, 8 x 16,384: peak extra {got} (<= 256 MiB) -> {verdict}")
    return lines or ["- (not measured in this run)"]


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


if __name__ == "__main__":
    if not h.child_entry(run):
        main()

"""NT-Xent forward+backward on CPU: ours (default, dense, chunked) vs lightly's NTXentLoss vs a naive loss.

Every (implementation, N) runs in a fresh process (see _harness.py): N pairs of d=128 embeddings (2N rows),
temperature 0.1, the same seeded inputs in every process. The table gives median wall time (process CPU
time), peak extra memory, ratios against lightly at the same N and the loss value; the acceptance lines
at the end are computed from the same run.

    uv run python benchmarks/contrastive.py                       # N = 1k, 4k, 16k, 65k pairs
    uv run python benchmarks/contrastive.py --ns 256 512 1024 2048 --impls ours_dense ours_chunked --name threshold

Implementations whose estimated memory exceeds --max-gib are not started (the table says what they would
need); --max-gib 20 runs the N=16k dense cells on a quiet machine with enough memory.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import _harness as h

IMPLS = ["ours_auto", "ours_dense", "ours_chunked", "lightly_ntxent", "naive"]
# Peak extra bytes per N^2 of the implementations that build (2N x 2N) matrices: naive and lightly from
# peer-benchmarks.md (3.0 and 4.2 x (2N)^2 x 4 B), ours_dense measured at N = 4096 by this script.
DENSE_BYTES_PER_N2 = {"naive": 48, "lightly_ntxent": 67, "ours_dense": 52}
DIM, TEMPERATURE = 128, 0.1


def naive_nt_xent(z_a, z_b, temperature):
    """The textbook loss: full similarity matrix, diagonal masked, cross entropy against the other view."""
    import torch
    import torch.nn.functional as F

    z = F.normalize(torch.cat([z_a, z_b]), dim=1)
    n = z_a.shape[0]
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    labels = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(sim, labels)


def make_loss(impl: str):
    if impl == "lightly_ntxent":
        from lightly.loss import NTXentLoss

        return NTXentLoss(temperature=TEMPERATURE)
    if impl == "naive":
        return lambda a, b: naive_nt_xent(a, b, TEMPERATURE)
    from ssl_core.losses import nt_xent

    mode = impl.removeprefix("ours_")
    return lambda a, b: nt_xent(a, b, TEMPERATURE, impl=mode)


def run(spec: dict) -> dict:
    import torch

    from ssl_core.kernels import similarity_implementation

    n, impl = spec["n"], spec["impl"]
    loss_fn = make_loss(impl)
    g = torch.Generator().manual_seed(0)
    z_a, z_b = torch.randn(n, DIM, generator=g), torch.randn(n, DIM, generator=g)

    def step(a, b):
        a, b = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
        loss = loss_fn(a, b)
        loss.backward()
        return loss.item()

    step(z_a[:8], z_b[:8])  # warm-up at a tiny size: imports, thread pool, first-call allocations
    repeats = 5 if n <= 4096 else 3 if n <= 16384 else 1
    result = h.measure(lambda: step(z_a, z_b), repeats)
    rows = torch.empty(2 * n, 1)
    result["path"] = similarity_implementation(rows, rows) if impl == "ours_auto" else impl
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ns", type=int, nargs="+", default=[1024, 4096, 16384, 65536])
    parser.add_argument("--impls", nargs="+", default=IMPLS, choices=IMPLS)
    parser.add_argument("--max-gib", type=float, default=8.0, help="skip configurations estimated above this")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per configuration")
    parser.add_argument("--name", default="contrastive", help="results/<name>.md and .json")
    args = parser.parse_args()

    header_line = h.machine_line()
    results: dict[str, dict[int, dict]] = {impl: {} for impl in args.impls}
    for n in args.ns:
        for impl in args.impls:
            need = DENSE_BYTES_PER_N2.get(impl, 0) * n * n / 2**30
            if need > args.max_gib:
                results[impl][n] = {"status": f"skipped (≈{need:,.0f} GiB)"}
            else:
                results[impl][n] = h.run_child(__file__, {"n": n, "impl": impl}, args.timeout, args.max_gib + 2)
            print(f"N={n} {impl}: {results[impl][n]}", file=sys.stderr, flush=True)

    cols = [f"N={n:,}" for n in args.ns]
    out = [
        "# NT-Xent forward+backward, CPU float32",
        "",
        f"`{' '.join(['uv run python benchmarks/contrastive.py', *sys.argv[1:]])}` on {header_line}. "
        f"N pairs x {DIM} (2N embeddings), temperature {TEMPERATURE}; each cell a fresh process "
        f"(OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'PASSIVE')}).",
        "",
        "**Median wall time, ms (process CPU ms)**",
        "",
        h.markdown_table(["impl", *cols], [[i, *(h.fmt_ms(results[i][n]) for n in args.ns)] for i in args.impls]),
        "",
        "**Peak extra memory, MiB**",
        "",
        h.markdown_table(["impl", *cols], [[i, *(h.fmt_mib(results[i][n]) for n in args.ns)] for i in args.impls]),
    ]
    if "lightly_ntxent" in args.impls:
        peer = results["lightly_ntxent"]
        rows = [
            [
                i,
                *(
                    f"{h.ratio(results[i][n], peer[n], 'ms')} / {h.ratio(results[i][n], peer[n], 'peak_mib')}"
                    for n in args.ns
                ),
            ]
            for i in args.impls
            if i != "lightly_ntxent"
        ]
        out += [
            "",
            "**Ratio to lightly's NTXentLoss at the same N, time / memory (< 1: ours is faster / smaller)**",
            "",
        ]
        out.append(h.markdown_table(["impl", *cols], rows))

    def value(r):
        return f"{r['value']:.6f}" if r and r.get("status") == "ok" else "–"

    out += ["", "**Loss value (same seeded inputs in every process)**", ""]
    out.append(h.markdown_table(["impl", *cols], [[i, *(value(results[i][n]) for n in args.ns)] for i in args.impls]))
    if "ours_auto" in args.impls:
        paths = [results["ours_auto"][n].get("path", "–") for n in args.ns]
        out += [
            "",
            "Path taken by the default (`impl='auto'`): "
            + ", ".join(f"N={n:,}: {p}" for n, p in zip(args.ns, paths, strict=True)),
        ]
    out += ["", "**Acceptance (this run)**", ""] + acceptance(results)
    text = "\n".join(out) + "\n"
    path = h.write(args.name, text, {"machine": header_line, "argv": sys.argv[1:], "results": results})
    print(text)
    print(f"written to {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}", file=sys.stderr)


def acceptance(results: dict) -> list[str]:
    lines = []
    chunked = results.get("ours_chunked", {}).get(65536) or results.get("ours_auto", {}).get(65536)
    if chunked:
        ok = chunked.get("status") == "ok" and chunked["peak_mib"] <= 1024
        got = (
            f"{chunked['peak_mib']:,.0f} MiB in {chunked['ms'] / 1e3:,.0f} s"
            if chunked.get("status") == "ok"
            else chunked["status"]
        )
        lines.append(f"- N=65,536 fwd+bwd within 1 GiB peak extra memory: {got} -> {'PASS' if ok else 'FAIL'}")
    auto, peer = results.get("ours_auto", {}).get(4096), results.get("lightly_ntxent", {}).get(4096)
    if auto and peer and auto.get("status") == "ok" and peer.get("status") == "ok":
        r = auto["ms"] / peer["ms"]
        diff = abs(auto["value"] - peer["value"])
        ok = r <= 1.0 and diff <= 1e-5
        lines.append(
            f"- N=4,096 default path / lightly time = {r:.2f} (<= 1.0), |loss difference| = {diff:.1e} (<= 1e-5) "
            f"-> {'PASS' if ok else 'FAIL'}"
        )
    return lines or ["- (not measured in this run)"]


if __name__ == "__main__":
    if not h.child_entry(run):
        main()

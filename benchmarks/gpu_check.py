"""Triton kernels against the PyTorch references on one CUDA device: correctness, time, TFLOP/s, peak memory.

Run it through gpu_check.sh. On CUDA it measures NT-Xent forward+backward (Triton vs dense torch vs the
chunked torch path; Inf-CL's ``cal_inf_loss`` against our InfoNCE where ``inf_cl`` is installed) and the
point operators (Triton vs the torch paths). ``--dry-run`` runs the same checks at toy sizes on CPU under
TRITON_INTERPRET=1 (times are then meaningless), which is what the test suite does. Exit status 1 when a
correctness check fails.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from ssl_core.kernels import ball_query, chamfer_distance, farthest_point_sampling, knn
from ssl_core.losses import info_nce, nt_xent

TEMPERATURE = 0.1
# max |ours - reference| / max |reference| allowed, per dtype (fp32 products are IEEE unless torch allows TF32)
TOLERANCE = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 5e-2}


def timed(fn, device, repeats):
    """Median seconds of ``fn()`` and the peak extra memory of one call (CUDA allocator; 0 on CPU)."""
    fn()  # warm-up: compiles the kernels
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        sync()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if device.type == "cuda" else 0.0
    return statistics.median(times), peak


def rel_error(ours, ref):
    return ((ours.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1e-30)).item()


def loss_and_grads(loss_fn, a, b):
    a, b = a.detach().clone().requires_grad_(True), b.detach().clone().requires_grad_(True)
    loss = loss_fn(a, b)
    loss.backward()
    return loss.detach(), a.grad, b.grad


def nt_xent_step(impl, a, b):
    return loss_and_grads(partial(nt_xent, temperature=TEMPERATURE, impl=impl), a, b)


def contrastive_rows(device, sizes, dim, dtypes, repeats):
    rows, failed = [], False
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else 2**62
    for dtype in dtypes:
        for n in sizes:
            g = torch.Generator(device=device).manual_seed(0)
            a = torch.randn(n, dim, device=device, generator=g).to(dtype)
            b = torch.randn(n, dim, device=device, generator=g).to(dtype)
            dense_fits = 4 * (2 * n) ** 2 * 4 < free / 2  # ~4 float32 (2N x 2N) buffers in the dense loss
            reference = "dense" if dense_fits else "chunked"
            ref = nt_xent_step(reference, a.float(), b.float())
            flops = 6 * (2 * n) ** 2 * dim  # forward 2 M K D, backward 4 M K D (dense-equivalent)
            for impl in ("triton", "dense", "chunked"):
                if impl == "dense" and not dense_fits:
                    rows.append([f"nt_xent {dtype_name(dtype)}", f"{n:,}", impl, "skipped: does not fit", "", "", ""])
                    continue
                fn = partial(nt_xent_step, impl, a, b)
                ours = fn()
                err = max(rel_error(o, r) for o, r in zip(ours, ref, strict=True))
                ok = err <= TOLERANCE[dtype]
                failed |= not ok
                seconds, peak = timed(fn, device, repeats)
                rows.append(
                    [
                        f"nt_xent {dtype_name(dtype)}",
                        f"{n:,}",
                        impl,
                        f"{'ok' if ok else 'FAIL'} ({err:.1e} vs {reference} fp32)",
                        f"{seconds * 1e3:,.2f}",
                        f"{flops / seconds / 1e12:.1f}",
                        f"{peak:,.0f}",
                    ]
                )
            rows += inf_cl_rows(a, b, n, dtype, device, repeats)
    return rows, failed


def inf_cl_rows(a, b, n, dtype, device, repeats):
    """Inf-CL's tiled InfoNCE (Cheng et al., 2024) beside ours on the same rows, where it is installed."""
    try:
        from inf_cl import cal_inf_loss
    except ImportError:
        return []
    q, k = F.normalize(a.float(), dim=1).to(dtype), F.normalize(b.float(), dim=1).to(dtype)
    scale = torch.tensor(1.0 / TEMPERATURE, device=device)
    rows = []
    ours_fn = lambda: loss_and_grads(lambda x, y: info_nce(x, y, temperature=TEMPERATURE, impl="triton"), q, k)  # noqa: E731
    try:
        peer_fn = lambda: loss_and_grads(lambda x, y: cal_inf_loss(x, y, scale=scale, head_dim=q.shape[1]), q, k)  # noqa: E731
        diff = abs(ours_fn()[0].item() - peer_fn()[0].item())
        for name, fn in (("ours info_nce triton", ours_fn), ("Inf-CL cal_inf_loss", peer_fn)):
            seconds, peak = timed(fn, device, repeats)
            flops = 6 * n * n * q.shape[1]
            tflops = f"{flops / seconds / 1e12:.1f}"
            row = [name, f"|loss diff| {diff:.1e}", f"{seconds * 1e3:,.2f}", tflops, f"{peak:,.0f}"]
            rows.append([f"info_nce {dtype_name(dtype)}", f"{n:,}", *row])
    except Exception as e:  # a peer that fails on these inputs is reported, not fatal
        rows.append([f"info_nce {dtype_name(dtype)}", f"{n:,}", "Inf-CL cal_inf_loss", f"error: {e!s:.80}", "", "", ""])
    return rows


def point_rows(device, b, n, repeats):
    g = torch.Generator(device=device).manual_seed(1)
    points = torch.rand(b, n, 3, device=device, generator=g)
    other = torch.rand(b, n, 3, device=device, generator=g)
    n_samples, n_query, k, radius = max(1, n // 8), max(1, n // 8), min(32, n), 0.1
    query = points[:, :n_query].contiguous()
    cases = {  # op: (our label -> implementation name, call)
        "fps": ({"triton": "triton", "torch": "torch"}, partial(farthest_point_sampling, points, n_samples)),
        "knn": ({"triton": "triton", "torch": "chunked"}, lambda impl: knn(query, points, k, impl=impl)[1]),
        "ball_query": ({"triton": "triton", "torch": "chunked"}, partial(ball_query, query, points, radius, k)),
        "chamfer": ({"triton": "triton", "torch": "chunked"}, partial(chamfer_gradient, points, other)),
    }
    rows, failed = [], False
    for op, (impls, fn) in cases.items():
        outs = {}
        for label, impl in impls.items():
            call = partial(fn, impl=impl)
            outs[label] = call()
            seconds, peak = timed(call, device, repeats)
            rows.append([op, f"{b} x {n:,}", label, "", f"{seconds * 1e3:,.2f}", "", f"{peak:,.0f}"])
        if op == "chamfer":
            ok = rel_error(outs["triton"], outs["torch"]) < 1e-4
        elif op == "ball_query":
            ok = all(torch.equal(x, y) for x, y in zip(outs["triton"], outs["torch"], strict=True))
        else:
            ok = torch.equal(outs["triton"], outs["torch"])
        failed |= not ok
        rows[-2][3] = "ok (= torch)" if ok else "FAIL (differs from torch)"
    return rows, failed


def chamfer_gradient(x, y, impl="auto"):
    x = x.clone().requires_grad_(True)
    chamfer_distance(x, y, impl=impl).sum().backward()
    return x.grad


def dtype_name(dtype):
    return str(dtype).removeprefix("torch.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="toy sizes on CPU under TRITON_INTERPRET=1")
    parser.add_argument("--out", type=Path, help="also write the table here (default on CUDA: results/gpu_check.md)")
    args = parser.parse_args()
    if args.dry_run:
        device, sizes, dim, repeats, clouds = torch.device("cpu"), [40], 32, 1, (2, 96)
        dtypes = [torch.float32, torch.float16]  # bf16 does not run in the interpreter
    elif torch.cuda.is_available():
        device, sizes, dim, repeats, clouds = torch.device("cuda"), [4096, 16384, 65536], 128, 5, (8, 8192)
        dtypes = [torch.float32, torch.float16, torch.bfloat16]
        args.out = args.out or Path(__file__).parent / "results" / "gpu_check.md"
    else:
        print("no CUDA device: run with --dry-run for the CPU check of the script", file=sys.stderr)
        return 2
    c_rows, c_failed = contrastive_rows(device, sizes, dim, dtypes, repeats)
    p_rows, p_failed = point_rows(device, *clouds, repeats)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU, Triton interpreter (dry run)"
    header = ["kernel", "N", "impl", "check", "ms", "TFLOP/s", "peak extra MiB"]
    lines = [f"# gpu_check on {name}, torch {torch.__version__}", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] * 3 + ["---"] + ["---:"] * 3) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in c_rows + p_rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    failed = c_failed or p_failed
    print("gpu_check: FAILED" if failed else "gpu_check: all checks passed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""OpenMP's wait policy and torch processes that share the cores: alone, and two at a time.

torch's CPU kernels run their parallel regions on OpenMP threads (libgomp). Between regions a thread waits
for the next one: it spins for a while (``GOMP_SPINCOUNT`` iterations; ``OMP_WAIT_POLICY=ACTIVE`` spins
without bound, ``PASSIVE`` not at all) and then sleeps. A spinning thread holds its core; when two
processes each run two threads on two cores, one process's spinning takes the core the other's thread
needs. This tool measures that: every (workload, policy, layout) runs in fresh processes with the policy in
their environment (libgomp reads it when torch loads it), and reports the median time of one iteration of
each process.

Workloads (each on two intra-op threads unless the layout says otherwise):

- ``train``: a training step of the main job (``vision/simclr``'s default method on one fixed batch of 256
  images: forward, backward, AdamW): large convolutions.
- ``small``: a pass of the linear probe (L-BFGS fits on 10,000 x 128 features): many small operations.

Layouts: ``alone`` (one process), ``pair`` (two processes started together, e.g. two runs, or a run beside
the tests), ``pair-1t`` (two processes of one thread each).

    uv run python benchmarks/omp_policy.py                 # every workload, policy and layout (~20 min on 2 cores)
    uv run python benchmarks/omp_policy.py --workloads train --iterations 10

Run it on an otherwise quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import machine_line, markdown_table  # noqa: E402

POLICIES = {
    "default": {},
    "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "ACTIVE": {"OMP_WAIT_POLICY": "ACTIVE"},
    "SPINCOUNT=0": {"GOMP_SPINCOUNT": "0"},
    "SPINCOUNT=10k": {"GOMP_SPINCOUNT": "10000"},
}
LAYOUTS = {"alone": (1, 2), "pair": (2, 2), "pair-1t": (2, 1)}  # processes, threads each
WORKLOADS = ("train", "small")
POLICY_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def _train_step():
    """One training step of the main job's method on a fixed batch (what `selfsup pretrain vision/simclr`
    repeats)."""
    import torch

    from ssl_core.config import base_config, to_run_config
    from ssl_core.registry import resolve
    from ssl_core.train.optim import build_optimizer
    from ssl_vision.data.images import ImageInfo

    modality, recipe = resolve("vision/simclr")
    cfg = to_run_config(base_config(modality, recipe))
    torch.manual_seed(0)
    method = recipe.method(cfg.method, ImageInfo(channels=1, image_size=28, mean=[0.29], std=[0.35]))
    method = method.to(memory_format=torch.channels_last).train()
    views = tuple(torch.randn(256, 1, 28, 28).contiguous(memory_format=torch.channels_last) for _ in range(2))
    optimizer = build_optimizer(method, cfg.train)

    def step():
        loss = method(views).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def _probe_fit():
    """The linear probe's fits on 10,000 x 128 features of 10 classes (many small operations)."""
    import torch

    from ssl_core.eval.linear import _fit

    g = torch.Generator().manual_seed(0)
    y = torch.arange(10_000) % 10
    x = torch.randn(10, 128, generator=g)[y] + 2 * torch.randn(10_000, 128, generator=g)
    return lambda: _fit(x, y, 10, 1e-3, None, 30)


def child(workload: str, threads: int, iterations: int, start_at: float) -> dict:
    """Run ``iterations`` of ``workload`` on ``threads`` threads from ``start_at`` (a shared wall-clock
    start, so that the processes of a pair overlap); the median seconds per iteration."""
    import torch

    torch.set_num_threads(threads)
    fn = _train_step() if workload == "train" else _probe_fit()
    fn()  # warm-up
    while time.time() < start_at:
        time.sleep(0.01)
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times)}


def measure(workload: str, policy: str, layout: str, iterations: int) -> list[float]:
    """Median seconds per iteration of each process of one (workload, policy, layout)."""
    processes, threads = LAYOUTS[layout]
    env = {k: v for k, v in os.environ.items() if k not in POLICY_VARS}
    env.update(POLICIES[policy])
    start_at = time.time() + 25  # after every process has imported torch and warmed up
    spec = json.dumps({"workload": workload, "threads": threads, "iterations": iterations, "start_at": start_at})
    procs = [
        subprocess.Popen([sys.executable, __file__, "--child", spec], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    out = []
    for p in procs:
        stdout, _ = p.communicate(timeout=1200)
        if p.returncode != 0:
            raise SystemExit(f"{workload}/{policy}/{layout} failed (exit {p.returncode})")
        out.append(json.loads(stdout.strip().splitlines()[-1])["median_s"])
    return out


def main(argv: list[str] | None = None) -> None:
    if argv is None and len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(child(**json.loads(sys.argv[2]))))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workloads", nargs="*", default=list(WORKLOADS), choices=WORKLOADS)
    p.add_argument("--policies", nargs="*", default=list(POLICIES), choices=list(POLICIES))
    p.add_argument("--layouts", nargs="*", default=list(LAYOUTS), choices=list(LAYOUTS))
    p.add_argument("--iterations", type=int, default=8, help="timed iterations per process (default 8)")
    a = p.parse_args(argv)
    print(machine_line(), flush=True)
    rows = []
    for workload in a.workloads:
        alone = None
        for policy in a.policies:
            cells = [workload, policy]
            for layout in a.layouts:
                times = measure(workload, policy, layout, a.iterations)
                if workload and policy == a.policies[0] and layout == "alone":
                    alone = times[0]
                worst = max(times)
                ratio = f" ({worst / alone:.2f}x)" if alone else ""
                cells.append(f"{1e3 * worst:,.0f}{ratio}")
                print(f"{workload} {policy} {layout}: {[round(1e3 * t) for t in times]} ms", flush=True)
            rows.append(cells)
    head = ["workload", "policy"] + [f"{layout} (ms)" for layout in a.layouts]
    print("\nslowest process's median ms per iteration (x: against the first policy alone)\n")
    print(markdown_table(head, rows))


if __name__ == "__main__":
    main()

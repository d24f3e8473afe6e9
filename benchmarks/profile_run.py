"""Where the time of a run goes: ``selfsup pretrain`` under torch's profiler, read by phase.

The trainer, the probes and the run mark their phases with ``torch.profiler.record_function`` ranges
(``train/data``, ``train/forward``, ``train/backward``, ``train/optimizer``, ``train/checkpoint``,
``run/load_data``, ``probe/embed <row>``, ``probe/knn``, ``probe/linear``, ``probe/tsne``); this tool runs the
real command in-process under the profiler (CPU activities only, so the marks cost microseconds) and prints
the time of each phase, per step for the training loop, beside the run's wall time, and with ``--ops`` the
operators that take the most time::

    uv run python benchmarks/profile_run.py vision/simclr                     # 60 steps, probes included
    uv run python benchmarks/profile_run.py vision/mae --max-steps 30 --set probe.enabled=false
    uv run python benchmarks/profile_run.py vision/simclr --trace trace.json  # Chrome / Perfetto trace too
    SELFSUP_CACHE_DIR=$(mktemp -d) uv run python benchmarks/profile_run.py vision/simclr   # probes uncached

Run it on a quiet machine: the shares are of wall time. The profiler adds a few percent to operator-heavy
phases (it records every operator).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import machine_line, markdown_table  # noqa: E402

PER_STEP = ("train/data", "train/forward", "train/backward", "train/optimizer")


def phase_times(prof) -> dict[str, tuple[int, float]]:
    """``{range name: (calls, total seconds)}`` of the named ranges (``train/``, ``probe/``, ``run/``) of a
    finished profile, read from the profiler's raw records (building its full event list takes minutes and
    gigabytes for a run with probes; the phases do not need it)."""
    out: dict[str, list] = defaultdict(lambda: [0, 0.0])
    for e in prof.profiler.kineto_results.events():
        name = e.name()
        if "/" not in name or name.split("/")[0] not in ("train", "probe", "run"):
            continue
        out[name][0] += 1
        out[name][1] += e.duration_ns() / 1e9
    return {k: (n, t) for k, (n, t) in out.items()}


def top_ops(prof, n: int = 12) -> list[list[str]]:
    """The ``n`` operators with the most self CPU time (the whole run), as table rows."""
    rows = []
    averages = [a for a in prof.key_averages() if "/" not in a.key]
    for a in sorted(averages, key=lambda a: a.self_cpu_time_total, reverse=True)[:n]:
        rows.append([a.key, f"{a.count:,}", f"{a.self_cpu_time_total / 1e6:.2f}"])
    return rows


def render(times: dict[str, tuple[int, float]], wall: float, steps: int) -> str:
    """The phase table: calls, seconds, milliseconds per training step, share of the wall time."""
    rows = []
    in_steps = sum(times.get(k, (0, 0.0))[1] for k in PER_STEP)
    for name in sorted(times, key=lambda k: (not k.startswith("train/"), k)):
        calls, total = times[name]
        per_step = f"{1e3 * total / steps:.1f}" if name.startswith("train/") and steps else ""
        rows.append([name, f"{calls:,}", f"{total:.2f}", per_step, f"{100 * total / wall:.1f}%"])
    rows.append(["train steps (data + forward + backward + optimizer)", "", f"{in_steps:.2f}",
                 f"{1e3 * in_steps / max(steps, 1):.1f}", f"{100 * in_steps / wall:.1f}%"])  # fmt: skip
    return markdown_table(["phase", "calls", "seconds", "ms per step", "share of wall"], rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("recipe", help="<modality>/<method>, e.g. vision/simclr")
    p.add_argument("--max-steps", type=int, default=60, help="training steps to profile (default 60)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="settings, as selfsup's --set")
    p.add_argument("--trace", type=Path, help="also write a Chrome trace (JSON) here")
    p.add_argument("--ops", action="store_true",
                   help="also list the operators with the most self time (builds the profiler's whole event list: "
                        "minutes and ~14 GB of memory for 60 steps of vision/simclr with its probes)")  # fmt: skip
    a = p.parse_args(argv)

    from torch.profiler import ProfilerActivity, profile

    from ssl_core.run import pretrain

    print(machine_line(), flush=True)
    with tempfile.TemporaryDirectory() as tmp, profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        pretrain(a.recipe, max_steps=a.max_steps, out=Path(tmp) / "run",
                 overrides=["train.progress=false", "train.max_minutes=null", *a.set])  # fmt: skip
        wall = time.perf_counter() - t0
    times = phase_times(prof)
    steps = times.get("train/optimizer", (0, 0.0))[0]
    print(f"\n{a.recipe}, {steps} steps, {' '.join(a.set) or 'default settings'}: wall {wall:.1f} s\n")
    print(render(times, wall, steps))
    if a.ops:
        print("\nOperators by self CPU time (the whole run; threads add up):\n")
        print(markdown_table(["operator", "calls", "self CPU s"], top_ops(prof)))
    if a.trace:
        prof.export_chrome_trace(str(a.trace))
        print(f"\ntrace: {a.trace}")


if __name__ == "__main__":
    main()

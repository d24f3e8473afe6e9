"""Measuring code shared by the benchmarks: one configuration per fresh process, medians, peak extra RSS.

The method (the same as the project's notes on peer benchmarks): every (implementation, size) runs in its own
subprocess with ``OMP_WAIT_POLICY=PASSIVE`` (libgomp's busy waiting doubles times on a shared machine) and a
memory guard (``RLIMIT_DATA``); it is warmed up at a tiny size, then ``malloc_trim(0)`` returns freed memory
to the OS, and the peak extra memory is ``ru_maxrss`` after the first call at the target size minus the
resident size just before it. Times are medians of the repeated calls (wall and process CPU time).
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
MiB = 2**20


def _trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc: nothing to trim
        pass


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def measure(call: Callable[[], object], repeats: int) -> dict:
    """Time ``call`` ``repeats`` times; the first call also gives the peak extra memory.

    Returns ``ms`` / ``cpu_ms`` (medians), ``peak_mib``, ``hwm_slack_mib`` (how far the process's earlier
    high-water mark lay above the starting RSS: a peak smaller than that would go unseen) and ``value``
    (what the first call returned, as a float when it is a number).
    """
    gc.collect()
    _trim()
    rss0, hwm0 = _rss_bytes(), _maxrss_bytes()
    walls, cpus, value = [], [], None
    for i in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = call()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        if i == 0:
            peak = _maxrss_bytes() - rss0
            value = out
        del out
    return {
        "ms": statistics.median(walls) * 1e3,
        "cpu_ms": statistics.median(cpus) * 1e3,
        "peak_mib": peak / MiB,
        "hwm_slack_mib": max(0, hwm0 - rss0) / MiB,
        "value": value,
    }


def child_entry(run: Callable[[dict], dict]) -> bool:
    """In a child process (``--child SPEC``): run one configuration and print its result as the last line."""
    if len(sys.argv) < 3 or sys.argv[1] != "--child":
        return False
    spec = json.loads(sys.argv[2])
    try:
        result = {"status": "ok", **run(spec)}
    except MemoryError:
        result = {"status": "oom-guard"}
    except RuntimeError as e:  # torch reports a refused allocation as a RuntimeError
        if "allocate" not in str(e):
            raise
        result = {"status": "oom-guard"}
    print(json.dumps(result, default=float))
    return True


def run_child(script: str, spec: dict, timeout_s: float, mem_limit_gib: float) -> dict:
    """Run ``script --child SPEC`` in a fresh interpreter under the memory guard; its result or a status."""
    limit = int(mem_limit_gib * 2**30)

    def guard() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))

    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    try:
        proc = subprocess.run(
            [sys.executable, script, "--child", json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
            preexec_fn=guard,
        )
    except subprocess.TimeoutExpired:
        return {"status": f"timeout ({timeout_s:.0f} s)"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        if "allocate" in tail[0] or "MemoryError" in tail[0] or proc.returncode in (-9, 137):
            return {"status": "oom-guard"}
        return {"status": f"failed: {tail[0][:120]}"}
    return json.loads(lines[-1])


def timed_step(optimizer, loss_fn: Callable[[], object]) -> float:
    """Seconds of one training step: ``loss_fn()`` (the forward), backward and ``optimizer.step()``."""
    t0 = time.perf_counter()
    loss = loss_fn()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return time.perf_counter() - t0


def machine_line() -> str:
    """CPU model, cores, torch version and the 1-minute load average (the machine is shared)."""
    import torch

    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0]
    return (
        f"{model}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"Python {platform.python_version()}, load average {load:.1f} at the start"
    )


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    align = ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_ms(result: dict | None) -> str:
    if result is None:
        return "–"
    if result.get("status") != "ok":
        return result.get("status", "–")
    digits = 1 if result["ms"] < 100 else 0
    return f"{result['ms']:,.{digits}f} ({result['cpu_ms']:,.0f})"


def fmt_mib(result: dict | None) -> str:
    if result is None or result.get("status") != "ok":
        return "–" if result is None else result.get("status", "–")
    return f"{result['peak_mib']:,.1f}"


def ratio(a: dict | None, b: dict | None, key: str) -> str:
    if not a or not b or a.get("status") != "ok" or b.get("status") != "ok" or not b[key]:
        return "–"
    return f"{a[key] / b[key]:.2f}"


def write(name: str, markdown: str, data: object) -> Path:
    """Write ``results/<name>.md`` and ``results/<name>.json``; return the markdown path."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1, default=float))
    path = RESULTS / f"{name}.md"
    path.write_text(markdown)
    return path

"""Which implementation of a kernel runs: one table and one rule.

Every operator of :mod:`ssl_core.kernels` has a few implementations that compute the same thing (tested
against each other). The table :data:`IMPLEMENTATIONS` describes each one: its name, the devices it runs
on, the dtypes it accepts and the smallest problem for which the automatic choice takes it. The rule in
:func:`select` is the only place that chooses:

1. an explicit ``impl=`` argument other than ``"auto"`` wins;
2. otherwise the environment variable ``SSL_CORE_KERNEL`` decides if it names an implementation of this
   operator: either a bare name for every operator that has it (``SSL_CORE_KERNEL=chunked``) or a
   comma-separated list of ``op=name`` (``SSL_CORE_KERNEL=contrastive=dense,knn=chunked``);
3. otherwise the first row of the operator's table whose devices, dtypes and minimum size fit.

A forced implementation that cannot run on the given tensors is a :class:`~ssl_core.errors.ConfigError`
that names the fix; it never silently falls back.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

import torch

from ssl_core.errors import ConfigError

ENV_VAR = "SSL_CORE_KERNEL"

# Size (anchors x candidates) from which the contrastive losses leave the dense N x N matrix for the
# tiled kernels. NT-Xent fwd+bwd on 2 CPU cores (benchmarks/README.md, "threshold"): dense and chunked
# tie at 512 pairs (1024 x 1024), chunked is 1.4x faster at 1024 pairs (2048 x 2048) with half the
# memory, and dense needs ~52 N^2 bytes beyond that. Not yet tuned on a GPU.
CONTRASTIVE_MIN_SIZE = 2048 * 2048

_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_TRITON_FLOATS = (torch.float16, torch.bfloat16, torch.float32)


@dataclass(frozen=True)
class Implementation:
    """One way of computing an operator.

    Args:
        name: what ``impl=`` and ``SSL_CORE_KERNEL`` call it.
        devices: device types it runs on (``"cuda"``, ``"cpu"``), or ``("any",)``.
        summary: one line on how it computes and what it costs.
        dtypes: floating dtypes it accepts.
        min_size: smallest problem size (operator-specific, e.g. anchors x candidates) for which the
            automatic choice takes it; a forced choice ignores it.
        needs_triton: runs Triton kernels (CUDA, or CPU under ``TRITON_INTERPRET=1`` when forced).
    """

    name: str
    devices: tuple[str, ...]
    summary: str
    dtypes: tuple[torch.dtype, ...] = _FLOATS
    min_size: int = 0
    needs_triton: bool = False

    def runs_on(self, device: torch.device, dtype: torch.dtype, *, forced: bool = False) -> str | None:
        """Why it cannot run on ``device`` / ``dtype`` (``None`` when it can)."""
        if dtype not in self.dtypes:
            return f"it accepts {', '.join(str(d).removeprefix('torch.') for d in self.dtypes)}, not {dtype}"
        if self.needs_triton:
            if importlib.util.find_spec("triton") is None:
                return "Triton is not installed (it comes with the CUDA builds of torch on Linux)"
            interpreted = device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1"
            if device.type != "cuda" and not (forced and interpreted):
                return f"it runs on CUDA tensors (on CPU only under TRITON_INTERPRET=1), not on {device.type}"
            return None
        if "any" not in self.devices and device.type not in self.devices:
            return f"it runs on {', '.join(self.devices)}, not on {device.type}"
        return None


IMPLEMENTATIONS: dict[str, tuple[Implementation, ...]] = {
    # log-sum-exp of every anchor's scaled similarities to the candidates (NT-Xent, InfoNCE, DCL)
    "contrastive": (
        Implementation(
            "triton",
            ("cuda",),
            "Triton: online log-sum-exp over column tiles; the backward recomputes the tiles "
            "(flash attention, Inf-CL); memory O(N d)",
            dtypes=_TRITON_FLOATS,
            min_size=CONTRASTIVE_MIN_SIZE,
            needs_triton=True,
        ),
        Implementation(
            "chunked",
            ("any",),
            "PyTorch autograd.Function over row blocks, recomputed in backward; memory O(N d + N block)",
            min_size=CONTRASTIVE_MIN_SIZE,
        ),
        Implementation("dense", ("any",), "the full N x M similarity matrix; fastest for small batches"),
    ),
    "fps": (
        Implementation(
            "triton",
            ("cuda",),
            "Triton: one program per cloud, distances in a global buffer",
            dtypes=_TRITON_FLOATS,
            needs_triton=True,
        ),
        Implementation(
            "numpy",
            ("cpu",),
            "vectorised NumPy loop over the samples (per-call overhead ~5x below torch's on CPU)",
            dtypes=(torch.float32, torch.float64),
        ),
        Implementation("torch", ("any",), "the same loop in torch operations, on any device"),
    ),
    "knn": (
        Implementation(
            "triton",
            ("cuda",),
            "Triton: query tiles against point tiles, top-k kept in registers",
            dtypes=_TRITON_FLOATS,
            needs_triton=True,
        ),
        Implementation(
            "kdtree",
            ("cpu",),
            "scipy cKDTree per cloud (O((N + M k) log N)), distances recomputed in torch",
            dtypes=(torch.float32, torch.float64),
        ),
        Implementation("chunked", ("any",), "PyTorch: query blocks against all points, top-k per block"),
    ),
    "ball_query": (
        Implementation(
            "triton",
            ("cuda",),
            "Triton: query tiles against point tiles, cumulative counts",
            dtypes=_TRITON_FLOATS,
            needs_triton=True,
        ),
        Implementation("chunked", ("any",), "PyTorch: query blocks against all points, cumulative counts"),
    ),
}


def _forced_by_environment(op: str) -> str | None:
    value = os.environ.get(ENV_VAR, "").strip()
    if not value:
        return None
    names = {impl.name for impl in IMPLEMENTATIONS[op]}
    for entry in value.split(","):
        entry = entry.strip()
        if "=" in entry:
            key, name = (part.strip() for part in entry.split("=", 1))
            if key not in IMPLEMENTATIONS:
                raise ConfigError(
                    f"{ENV_VAR}={value!r} names the operator {key!r}; operators: {', '.join(IMPLEMENTATIONS)}"
                )
            if key == op:
                return name
        elif entry in names:
            return entry
    return None


def select(op: str, device: torch.device, dtype: torch.dtype, size: int = 0, impl: str = "auto") -> Implementation:
    """The implementation of ``op`` that runs for tensors on ``device`` of ``dtype`` and a problem of ``size``.

    Args:
        op: a key of :data:`IMPLEMENTATIONS` (``"contrastive"``, ``"fps"``, ``"knn"``, ``"ball_query"``).
        device: device of the inputs.
        dtype: dtype of the inputs.
        size: problem size compared with each row's ``min_size``.
        impl: ``"auto"`` or the name of one implementation, which then must be able to run.

    Raises:
        ConfigError: ``impl`` (or ``SSL_CORE_KERNEL``) names an implementation that does not exist or cannot
            run on these tensors.
    """
    table = IMPLEMENTATIONS[op]
    source = "impl="
    if impl == "auto":
        forced = _forced_by_environment(op)
        source = f"{ENV_VAR}="
    else:
        forced = impl
    if forced is not None and forced != "auto":
        by_name = {row.name: row for row in table}
        if forced not in by_name:
            raise ConfigError(
                f"{source}{forced!r} is not an implementation of {op}; choose one of {', '.join(['auto', *by_name])}"
            )
        row = by_name[forced]
        why = row.runs_on(device, dtype, forced=True)
        if why is not None:
            raise ConfigError(f"{source}{forced!r} cannot run {op} here: {why}; use impl='auto'")
        return row
    for row in table:
        if size >= row.min_size and row.runs_on(device, dtype) is None:
            return row
    raise ConfigError(f"no implementation of {op} runs on {device.type} tensors of {dtype}")


def describe() -> str:
    """The table of implementations as markdown (operator, name, devices, dtypes, automatic from, how)."""
    lines = ["| operator | implementation | devices | automatic from size | how |", "|---|---|---|---:|---|"]
    for op, rows in IMPLEMENTATIONS.items():
        for row in rows:
            lines.append(f"| {op} | {row.name} | {', '.join(row.devices)} | {row.min_size:,} | {row.summary} |")
    return "\n".join(lines)

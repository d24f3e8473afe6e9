"""Probe scores remembered across runs, keyed by exactly what they are computed from.

A run probes three rows: the pretrained backbone, the untrained one and the raw input. The last two are
the same in every run of a recipe on a data set (the untrained backbone is rebuilt from the run's seed),
and their kNN and linear probes cost most of the probe phase (the linear probe on 784 raw pixels alone
took 95 s on 2 loaded cores). So every row's scores are stored under a digest of the embeddings and
labels they were computed from, the probe settings and the source code of the probes (:func:`probe_key`):
a row whose embeddings are bit for bit those of an earlier row gets that row's scores back without
refitting; any other row is computed. A row that is a function of a network's state alone (the untrained
network) is also stored under a digest of what its embeddings are computed from (:func:`model_key`: the
inputs, the network's tensors, the source of its package and of the core, the installed package
versions), so a later run finds it without even embedding. Nothing else can match a key, so a cached
score is the score.

The cache lives in ``$SELFSUP_CACHE_DIR`` (default ``$XDG_CACHE_HOME/selfsup``, else
``~/.cache/selfsup``), under ``probes/``, one small JSON file per row; ``probe.cache=false`` turns it off.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import sys
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssl_core.eval import crossval, knn, linear
from ssl_core.io import atomic_write, cache_root


def _probe_code() -> bytes:
    """The source of the probes, so that a change to them invalidates every cached score."""
    return "".join(inspect.getsource(m) for m in (knn, linear, crossval)).encode()


def probe_key(
    train_emb: torch.Tensor,
    train_y: torch.Tensor,
    test_emb: torch.Tensor,
    test_y: torch.Tensor,
    settings: Mapping[str, object],
) -> str:
    """A digest of a probe row's inputs: the embeddings and labels (values, dtypes, shapes), the probe
    settings that change scores, and the probes' source code.

    Shapes:
        - train_emb: ``(N, D)``, train_y: ``(N,)``, test_emb: ``(M, D)``, test_y: ``(M,)``
    """
    h = hashlib.blake2b(digest_size=20)
    for t in (train_emb, train_y, test_emb, test_y):
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    h.update(json.dumps(dict(settings), sort_keys=True, default=str).encode())
    h.update(_probe_code())
    return h.hexdigest()


def _update(h: Any, item: Any) -> None:
    """Feed an input (tensors, numbers, strings, and lists, tuples and dicts of them) into a digest."""
    if isinstance(item, torch.Tensor):
        t = item.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes())
    elif isinstance(item, Mapping):
        for k in sorted(item, key=str):
            h.update(f"K{k}".encode())
            _update(h, item[k])
    elif isinstance(item, (list, tuple)):
        h.update(f"L{len(item)}".encode())
        for x in item:
            _update(h, x)
    else:
        h.update(f"V{type(item).__name__}{item!r}".encode())


def inputs_digest(inputs: Iterable[Any], labels: torch.Tensor) -> str:
    """A digest of a labelled split's inputs, item by item, and its labels."""
    h = hashlib.blake2b(digest_size=20)
    for item in inputs:
        _update(h, item)
    _update(h, labels)
    return h.hexdigest()


def _package_code(module: str) -> bytes:
    """The source files of the top-level package of ``module``, in a stable order; nothing for a package
    installed into site-packages (torch, ...), whose version :func:`model_key` includes instead (an editable
    workspace package, such as ``ssl_vision``, keeps its version while its code changes)."""
    top = sys.modules[module.split(".")[0]]
    root = Path(top.__file__).parent
    if "site-packages" in root.parts:
        return b""
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*.py")))


def model_key(net: nn.Module, inputs: str, settings: Mapping[str, object]) -> str:
    """A digest of everything a row embedded by ``net`` (e.g. an untrained method's ``embed``) depends on:
    the inputs' digest (:func:`inputs_digest` of the training and test splits), the probe settings, the
    network's class, tensors and buffers, the source of its package and of the core, and the versions of
    the installed packages (torch, transformers, ...)."""
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{inputs}{type(net).__module__}.{type(net).__qualname__}".encode())
    h.update(json.dumps(dict(settings), sort_keys=True, default=str).encode())
    _update(h, dict(net.state_dict()))
    h.update(_package_code(type(net).__module__) + _package_code(__name__) + _probe_code())
    h.update(" ".join(sorted(f"{d.name}=={d.version}" for d in metadata.distributions())).encode())
    return h.hexdigest()


class ProbeCache:
    """Scores of probe rows by :func:`probe_key`, one JSON file each under ``root``.

    Args:
        root: the folder (default: ``cache_root() / "probes"``).
    """

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else cache_root() / "probes"

    def get(self, key: str) -> dict[str, float] | None:
        """The scores stored under ``key``, or ``None`` (also when the file cannot be read)."""
        try:
            return json.loads((self.root / f"{key}.json").read_text())
        except (OSError, ValueError):
            return None

    def put(self, key: str, scores: Mapping[str, float]) -> None:
        """Store ``scores`` under ``key``; a cache that cannot be written is skipped silently."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with atomic_write(self.root / f"{key}.json", fsync=False) as tmp:
                tmp.write_text(json.dumps(dict(scores)))
        except OSError:
            pass

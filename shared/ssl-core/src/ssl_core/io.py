"""Atomic writes: a file or folder appears complete under its name, or not at all.

Everything the core writes into a run, checkpoint or export folder goes through :func:`atomic_write`, so a
run killed while writing leaves the previous version in place (and at worst a hidden temporary beside it).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_PREFIX = ".tmp-"


CACHE_ENV = "SELFSUP_CACHE_DIR"


def cache_root() -> Path:
    """Where selfsup keeps what it may recompute: ``$SELFSUP_CACHE_DIR``, else ``$XDG_CACHE_HOME/selfsup``,
    else ``~/.cache/selfsup``."""
    if root := os.environ.get(CACHE_ENV):
        return Path(root).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "selfsup"


def modality_cache(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where a modality package caches generated and derived data: ``cache_dir`` when given (a user's
    ``data.cache_dir``), else ``cache_root() / name`` (e.g. ``~/.cache/selfsup/audio``)."""
    return Path(cache_dir).expanduser() if cache_dir else cache_root() / name


def temporary_name(path: Path) -> Path:
    """The hidden temporary that :func:`atomic_write` writes before renaming it to ``path``.

    It sits in the same folder (a rename is atomic only within one file system), keeps the suffix (writers
    such as matplotlib's ``savefig`` choose the format from it) and carries the process id, so two processes
    never write the same temporary: ``out/metrics.json`` -> ``out/.tmp-metrics-<pid>.json``.
    """
    return path.with_name(f"{TMP_PREFIX}{path.stem}-{os.getpid()}{path.suffix}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_write(path: str | os.PathLike, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write instead of ``path``; rename it to ``path`` when the block succeeds.

    The caller writes a file (or creates a folder and fills it) at the yielded path. When the block ends
    normally the temporary is flushed to disk (``fsync``: the file, or every file of the folder) and renamed
    over ``path`` with ``os.replace``, atomic on POSIX file systems, then the parent folder is flushed so the
    rename itself survives a power cut. When the block raises, the temporary is removed and ``path`` is left
    as it was. A folder can only replace a missing ``path`` (or an empty folder).

    Args:
        path: the file or folder to write; its parent folder must exist.
        fsync: flush to disk before and after the rename (what a checkpoint needs; a plot does not).

    Example::

        with atomic_write(run_dir / "metrics.json") as tmp:
            tmp.write_text(json.dumps(table))
    """
    path = Path(path)
    tmp = temporary_name(path)
    _remove(tmp)  # left by an earlier process that had the same id
    try:
        yield tmp
        if fsync:
            for f in sorted(tmp.rglob("*")) if tmp.is_dir() else [tmp]:
                if f.is_file():
                    _fsync(f)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    if fsync:
        _fsync(path.parent)

"""Checkpoints: safetensors for every tensor, JSON for the rest, written atomically.

A checkpoint is a folder ``checkpoints/step_<N>/`` holding

- ``model.safetensors``: the method's weights (backbone, heads, teachers, queues, centres);
- ``trainer.safetensors``: optimizer tensors and random-generator states;
- ``trainer.json``: step, epoch, planned schedule length, data order, optimizer hyper-parameters.

The folder is written under a temporary name and renamed into place (:func:`ssl_core.io.atomic_write`),
which is atomic on POSIX file systems, so a run killed while saving leaves the previous checkpoint as the
latest complete one.
Nothing is unpickled when loading, and every reader first runs :func:`check_checkpoint`, so a damaged
file (truncated by a full disk, a killed copy, a bad transfer) is reported as a :class:`CheckpointError`
that names it and the previous intact checkpoint, never as a traceback from the safetensors library.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from ssl_core.errors import CheckpointError
from ssl_core.io import TMP_PREFIX, atomic_write

_STEP_DIR = re.compile(r"^step_(\d{8,})$")
CHECKPOINT_FILES = ("model.safetensors", "trainer.safetensors", "trainer.json")


@dataclass
class Checkpoint:
    """A loaded checkpoint folder (weights are loaded separately with :func:`load_weights`)."""

    path: Path
    state: dict[str, Any]
    tensors: dict[str, torch.Tensor]

    @property
    def step(self) -> int:
        return int(self.state["step"])


def list_checkpoints(ckpt_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoint folders under ``ckpt_dir``, oldest first (temporary folders are ignored)."""
    d = Path(ckpt_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if p.is_dir() and (m := _STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(ckpt_dir: str | os.PathLike) -> Path | None:
    """The most recent complete checkpoint folder, or ``None``."""
    found = list_checkpoints(ckpt_dir)
    return found[-1] if found else None


def save_checkpoint(
    ckpt_dir: str | os.PathLike,
    step: int,
    model: nn.Module,
    state: dict[str, Any],
    tensors: dict[str, torch.Tensor],
    keep: int = 2,
) -> Path:
    """Write ``step_<step>/`` atomically and keep only the ``keep`` most recent checkpoints.

    Args:
        ckpt_dir: the run's ``checkpoints/`` folder.
        step: number of optimizer steps taken; names the folder.
        model: the (unwrapped) method whose ``state_dict`` is saved.
        state: JSON-serialisable trainer state.
        tensors: other tensors to keep (optimizer moments, generator states).
        keep: number of checkpoints to keep.

    Returns:
        The path of the new checkpoint folder.
    """
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    final = ckpt_dir / f"step_{step:08d}"
    if final.exists():  # already saved at this step (e.g. the end of a run that just checkpointed)
        return final
    for stale in ckpt_dir.glob(TMP_PREFIX + "*"):  # left by a run killed while saving
        shutil.rmtree(stale, ignore_errors=True)
    with atomic_write(final) as tmp:
        tmp.mkdir()
        save_model(model, str(tmp / "model.safetensors"))
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / "trainer.safetensors"))
        (tmp / "trainer.json").write_text(json.dumps({**state, "step": step}, indent=1))
    for old in list_checkpoints(ckpt_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _safetensors_damage(file: Path) -> str | None:
    """Why a ``.safetensors`` file cannot be read, or ``None``. Reads only its header: 8 bytes giving the
    header's length, the JSON header, then the tensors, which must end exactly where the file ends; then
    the safetensors library validates the header (dtypes, offsets) without reading the tensors."""
    size = file.stat().st_size
    with open(file, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"is truncated ({size} bytes, less than a safetensors header)"
        n = int.from_bytes(head, "little")
        if n > size - 8:
            return f"is truncated ({size:,} bytes, but its header alone needs {n + 8:,})"
        try:
            header = json.loads(f.read(n))
            end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return "has an unreadable header (not a safetensors file)"
    if 8 + n + end > size:
        return f"is truncated ({size:,} of {8 + n + end:,} bytes)"
    if 8 + n + end < size:
        return f"has {size - 8 - n - end:,} bytes beyond the tensors its header describes"
    try:
        with safe_open(str(file), "pt"):
            pass
    except SafetensorError as e:
        return f"has an invalid header ({e})"
    return None


def _file_damage(file: Path) -> str | None:
    """Why a checkpoint or export file cannot be read (missing, truncated, unparsable), or ``None``."""
    if not file.is_file():
        return "is missing"
    try:
        if file.suffix == ".safetensors":
            return _safetensors_damage(file)
        if file.suffix == ".json":
            json.loads(file.read_text())
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    except (UnicodeDecodeError, ValueError) as e:
        return f"is not valid JSON ({str(e).splitlines()[0]})"
    return None


def _damaged(path: Path, file: str, reason: str, kind: str, fix: str | None) -> CheckpointError:
    message = f"{kind} {path} is damaged: {file} {reason}"
    if _STEP_DIR.match(path.name):
        earlier = [p for p in list_checkpoints(path.parent) if int(p.name[5:]) < int(path.name[5:])]
        intact = [p for p in earlier if not any(_file_damage(p / f) for f in CHECKPOINT_FILES)]
        if intact:
            message += f"; the previous checkpoint {intact[-1]} is intact"
            message += f": {fix.replace('{previous}', str(intact[-1]))}" if fix else ""
        else:
            message += f"; the run has no earlier {'intact ' if earlier else ''}checkpoint"
    elif fix:
        message += f"; {fix}"
    return CheckpointError(message)


def check_checkpoint(
    path: str | os.PathLike,
    files: tuple[str, ...] = CHECKPOINT_FILES,
    kind: str = "checkpoint",
    fix: str | None = None,
) -> Path:
    """Check that ``files`` of a checkpoint (or export) folder are complete, before anything reads them.

    A ``.safetensors`` file must hold a readable header and exactly the bytes it describes (a truncated
    file fails here, not in the Rust reader); a ``.json`` file must parse. This reads headers only, so it
    costs milliseconds. Every reader of checkpoints and exports calls it: ``selfsup eval``, ``selfsup
    export``, ``--resume``, :func:`load_checkpoint`, :func:`load_weights` and
    :func:`ssl_core.load_backbone`.

    Args:
        path: the folder, e.g. ``run/checkpoints/step_00000300`` or an export folder.
        files: the files of the folder to check (those the caller is about to read).
        kind: what the folder is, for the message (``checkpoint``, ``export``, ``run folder``).
        fix: what to do instead, appended to the message. For a ``step_<N>`` folder it is said only when an
            earlier intact checkpoint exists, with ``{previous}`` replaced by that checkpoint's path.

    Returns:
        ``path``.

    Raises:
        CheckpointError: when the folder does not exist; or naming the folder, the damaged file and why, and
        for a ``step_<N>`` folder also the most recent earlier checkpoint of the run that is intact, or that
        there is none.
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{kind} {path} not found")
    for name in files:
        if (reason := _file_damage(path / name)) is not None:
            raise _damaged(path, name, reason, kind, fix)
    return path


def resume_fix(path: Path) -> str:
    """The ``fix`` of :func:`check_checkpoint` when resuming from the damaged checkpoint ``path``."""
    return f"move {path.name} out of {path.parent} and resume again to continue from {{previous}}"


def load_checkpoint(path: str | os.PathLike, fix: str | None = None) -> Checkpoint:
    """Read a checkpoint folder's trainer state and tensors (not the weights), after :func:`check_checkpoint`
    (``fix``: see there)."""
    path = check_checkpoint(path, ("trainer.json", "trainer.safetensors"), fix=fix)
    state = json.loads((path / "trainer.json").read_text())
    return Checkpoint(path=path, state=state, tensors=load_file(str(path / "trainer.safetensors")))


def load_weights(model: nn.Module, path: str | os.PathLike, strict: bool = True, fix: str | None = None) -> None:
    """Load ``model.safetensors`` of a checkpoint folder (or a ``.safetensors`` file) into ``model``, after
    :func:`check_checkpoint` (``fix``: see there)."""
    path = Path(path)
    folder, name = (path.parent, path.name) if path.suffix == ".safetensors" else (path, "model.safetensors")
    check_checkpoint(folder, (name,), fix=fix)
    try:
        load_model(model, str(folder / name), strict=strict)
    except RuntimeError as e:
        raise CheckpointError(f"the weights in {folder / name} do not fit the model: {e}") from None


def optimizer_state_to_flat(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors (for safetensors) and JSON metadata."""
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim/{pid}/{k}"] = v
            else:
                scalars.setdefault(str(pid), {})[k] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_state_from_flat(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`optimizer_state_to_flat`."""
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("optim/"):
            _, pid, k = key.split("/", 2)
            state.setdefault(int(pid), {})[k] = v
    for pid, st in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(st)
    return {"state": state, "param_groups": meta["param_groups"]}

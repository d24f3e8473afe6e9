"""Checkpoints: safetensors for every tensor, JSON for the rest, written atomically.

A checkpoint is a folder ``checkpoints/step_<N>/`` holding

- ``model.safetensors``: the method's weights (backbone, heads, teachers, queues, centres);
- ``trainer.safetensors``: optimizer tensors and random-generator states;
- ``trainer.json``: step, epoch, planned schedule length, data order, optimizer hyper-parameters.

The folder is written under a temporary name and renamed into place (:func:`ssl_core.io.atomic_write`),
which is atomic on POSIX file systems, so a run killed while saving leaves the previous checkpoint as the
latest complete one.
Nothing is unpickled when loading.
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
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from ssl_core.errors import CheckpointError
from ssl_core.io import TMP_PREFIX, atomic_write

_STEP_DIR = re.compile(r"^step_(\d{8,})$")


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


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint folder's trainer state and tensors (not the weights)."""
    path = Path(path)
    try:
        state = json.loads((path / "trainer.json").read_text())
        tensors = load_file(str(path / "trainer.safetensors"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from e
    return Checkpoint(path=path, state=state, tensors=tensors)


def load_weights(model: nn.Module, path: str | os.PathLike, strict: bool = True) -> None:
    """Load ``model.safetensors`` of a checkpoint folder (or a ``.safetensors`` file) into ``model``."""
    path = Path(path)
    file = path / "model.safetensors" if path.is_dir() else path
    try:
        load_model(model, str(file), strict=strict)
    except (OSError, RuntimeError) as e:
        raise CheckpointError(f"cannot load weights from {file}: {e}") from e


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

"""Export a pretrained backbone as safetensors + JSON, and load it back with one call.

An export folder holds ``backbone.safetensors`` (the weights) and ``config.json``::

    {"format": "selfsup-backbone", "version": 1, "modality": "vision", "name": "resnet",
     "config": {...}, "embed_dim": 256, "input": {...}, "recipe": "vision/simclr", "source": {...}}

``load_backbone(folder)`` rebuilds the module through the modality's ``backbones`` registry; nothing
is unpickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, load_model, save_model
from torch import nn

from ssl_core.errors import CheckpointError
from ssl_core.io import atomic_write
from ssl_core.registry import get_modality
from ssl_core.train.checkpoint import check_checkpoint, latest_checkpoint

WEIGHTS = "backbone.safetensors"
CONFIG = "config.json"
FORMAT = "selfsup-backbone"


def _build(cfg: dict) -> nn.Module:
    modality = get_modality(cfg["modality"])
    return _build_with(modality, cfg)


def _build_with(modality, cfg: dict) -> nn.Module:
    if cfg["name"] not in modality.backbones:
        raise CheckpointError(f"modality {cfg['modality']} has no backbone named {cfg['name']!r}")
    return modality.backbones[cfg["name"]](cfg["config"])


def export_backbone(
    run_dir: str | os.PathLike, out_dir: str | os.PathLike, checkpoint: str | os.PathLike | None = None
) -> Path:
    """Write the backbone of a run's checkpoint (default: the latest) to ``out_dir``.

    Args:
        run_dir: a run folder made by ``selfsup pretrain``.
        out_dir: the export folder (created; existing export files in it are replaced atomically).
        checkpoint: a checkpoint folder of the run.

    Returns:
        ``out_dir``.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    spec_path = run_dir / "backbone.json"
    if not spec_path.is_file():
        raise CheckpointError(f"{run_dir} is not a run folder: backbone.json is missing")
    check_checkpoint(run_dir, (spec_path.name,), kind="run folder")
    spec = json.loads(spec_path.read_text())
    modality = get_modality(spec["modality"])
    ckpt = Path(checkpoint) if checkpoint is not None else latest_checkpoint(run_dir / "checkpoints")
    if ckpt is None:
        raise CheckpointError(f"{run_dir} has no checkpoint to export")
    fix = f"export it with `selfsup export {run_dir} {out_dir} --checkpoint {{previous}}`"
    check_checkpoint(ckpt, ("model.safetensors",), fix=fix)
    state = load_file(str(ckpt / "model.safetensors"))
    weights = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    backbone = _build_with(modality, spec)
    try:
        backbone.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        raise CheckpointError(
            f"the backbone weights of {ckpt} do not match its backbone.json: {str(e).splitlines()[0]}"
        ) from None
    cfg = {
        "format": FORMAT,
        "version": 1,
        **spec,
        "source": {"run": str(run_dir), "checkpoint": ckpt.name, "step": int(ckpt.name.split("_")[-1])},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(out_dir / WEIGHTS) as tmp_w, atomic_write(out_dir / CONFIG) as tmp_c:
        save_model(backbone, str(tmp_w))
        tmp_c.write_text(json.dumps(cfg, indent=2) + "\n")
    if modality.export_extra is not None:
        modality.export_extra(backbone.eval(), cfg, out_dir)
    return out_dir


def load_backbone(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Load an exported backbone in evaluation mode.

    Args:
        path: a folder written by :func:`export_backbone` (``selfsup export``).
        device: where to put the module.

    Example::

        backbone = ssl_core.load_backbone("exports/simclr")
        emb = backbone(images)  # (B, embed_dim)
    """
    path = Path(path)
    if not (path / CONFIG).is_file():
        raise CheckpointError(f"{path} is not a selfsup export: {CONFIG} is missing (write one with `selfsup export`)")
    check_checkpoint(path, (CONFIG,), kind="export", fix="export the run again with `selfsup export RUN_FOLDER OUT`")
    cfg = json.loads((path / CONFIG).read_text())
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        raise CheckpointError(f"{path / CONFIG} is not a selfsup backbone export")
    fix = f"export it again with `selfsup export {(cfg.get('source') or {}).get('run', 'RUN_FOLDER')} {path}`"
    check_checkpoint(path, (WEIGHTS,), kind="export", fix=fix)
    module = _build(cfg)
    try:
        load_model(module, str(path / WEIGHTS), strict=True, device=str(device))
    except RuntimeError as e:
        msg = str(e).splitlines()[0]
        raise CheckpointError(f"the weights in {path / WEIGHTS} do not fit its {CONFIG}: {msg}") from None
    return module.to(device).eval()

"""The MONAI side of an export: the network of a :class:`~ssl_medical.models.monai_nets.MonaiBackbone` as MONAI users
load it, beside the core's ``backbone.safetensors`` + ``config.json``.

``selfsup export RUN OUT`` runs :func:`export_extra` after the core's export (as the modality's ``export_extra``
hook), which writes ``OUT/monai/``:

- ``model.pt``: the state dict of the MONAI network (``backbone.net``), written with ``torch.save`` as a plain
  ``{name: tensor}`` dict, the format MONAI bundles and tutorials load (``torch.load(..., weights_only=True)`` reads
  it without unpickling code);
- ``config.json``: ``{"class": "monai.networks.nets.UNet", "kwargs": {...}, "weights": "model.pt", ...}``.

Load it without this package::

    import json, torch, monai.networks.nets as nets
    cfg = json.load(open("OUT/monai/config.json"))
    net = getattr(nets, cfg["class"].rsplit(".", 1)[1])(**cfg["kwargs"])
    net.load_state_dict(torch.load("OUT/monai/model.pt", weights_only=True), strict=True)

or with :func:`load_monai` (``load_monai("OUT")``). Backbones that are not MONAI networks (the CSwin UNet, the
signal and tile backbones) get no ``monai/`` folder.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssl_core.errors import CheckpointError
from ssl_core.io import atomic_write

MONAI_DIR = "monai"
MONAI_WEIGHTS = "model.pt"
MONAI_CONFIG = "config.json"
_PREFIX = "monai.networks.nets."


def export_extra(backbone: nn.Module, config: dict[str, Any], out_dir: str | os.PathLike) -> Path | None:
    """Write ``out_dir/monai/`` (``model.pt`` + ``config.json``) for a MONAI backbone; do nothing for others.

    Each file is written atomically (a temporary renamed over the old file), weights first, so a reader never
    sees a config without its weights.

    Args:
        backbone: the exported backbone; a :class:`~ssl_medical.models.monai_nets.MonaiBackbone` (anything with a
            ``net`` and a ``config()`` giving ``{"monai_class", "kwargs"}``).
        config: the export's ``config.json`` content (its ``recipe`` and ``embed_dim`` are copied).
        out_dir: the export folder.

    Returns:
        The ``monai/`` folder, or ``None`` when ``backbone`` is not a MONAI network.
    """
    own = backbone.config() if callable(getattr(backbone, "config", None)) else None
    if (
        not isinstance(own, dict)
        or "monai_class" not in own
        or not isinstance(getattr(backbone, "net", None), nn.Module)
    ):
        return None
    folder = Path(out_dir) / MONAI_DIR
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in backbone.net.state_dict().items()}
    meta = {
        "class": _PREFIX + own["monai_class"],
        "kwargs": own["kwargs"],
        "weights": MONAI_WEIGHTS,
        "recipe": config.get("recipe"),
        "embed_dim": config.get("embed_dim"),
        "input": config.get("input"),
        "load": "net = <class>(**kwargs); net.load_state_dict(torch.load(weights, weights_only=True), strict=True)",
    }
    try:
        import monai

        meta["monai_version"] = monai.__version__
    except ImportError:  # pragma: no cover - monai is a dependency of this package
        pass
    with atomic_write(folder / MONAI_WEIGHTS) as tmp:
        torch.save(state, tmp)
    with atomic_write(folder / MONAI_CONFIG) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def load_monai(export_dir: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """The MONAI network of an export, built from ``monai/config.json`` and loaded strictly, in evaluation mode.

    Args:
        export_dir: an export folder (holding ``monai/``) or its ``monai/`` folder itself.
        device: where to put the network.

    Raises:
        CheckpointError: when the folder has no MONAI network, names a class outside ``monai.networks.nets``, or
            its weights do not fit the class.
    """
    folder = Path(export_dir)
    if not (folder / MONAI_CONFIG).is_file() or (folder / MONAI_DIR / MONAI_CONFIG).is_file():
        folder = folder / MONAI_DIR
    cfg_path = folder / MONAI_CONFIG
    if not cfg_path.is_file():
        raise CheckpointError(
            f"{export_dir} holds no MONAI network ({MONAI_DIR}/{MONAI_CONFIG} is missing): only MONAI backbones "
            "(UNet, SwinUNETR, ViTAutoEnc) are exported for MONAI; load others with ssl_core.load_backbone"
        )
    try:
        cfg = json.loads(cfg_path.read_text())
        name, kwargs = cfg["class"], cfg["kwargs"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{cfg_path} is damaged ({e}): export the run again with `selfsup export`") from None
    if not isinstance(name, str) or not name.startswith(_PREFIX) or "." in name[len(_PREFIX) :]:
        raise CheckpointError(f"{cfg_path} names {name!r}, not a class of monai.networks.nets")
    module, cls = name.rsplit(".", 1)
    net = getattr(importlib.import_module(module), cls)(**kwargs)
    weights = folder / cfg.get("weights", MONAI_WEIGHTS)
    if not weights.is_file():
        raise CheckpointError(f"{weights} is missing: export the run again with `selfsup export`")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as e:
        msg = (str(e).splitlines() or [type(e).__name__])[0]
        raise CheckpointError(
            f"the weights in {weights} do not fit {name}(**kwargs) or are damaged: {msg}; export the run again"
        ) from None
    return net.to(device).eval()

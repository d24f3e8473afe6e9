"""Run configuration: typed dataclasses merged default -> recipe file -> command line (OmegaConf).

A run's configuration has five parts, and each component receives only its own part:

- ``recipe``: ``"<modality>/<method>"``;
- ``method``: the method's dataclass (e.g. SimCLR's temperature, backbone and views);
- ``data``: the modality's data dataclass (``path`` is what ``--data`` sets);
- ``train``: :class:`~ssl_core.train.config.TrainConfig`;
- ``probe``: :class:`~ssl_core.eval.config.ProbeConfig`.

Overrides use dotted keys, ``--set train.lr=0.3 method.temperature=0.2``; values are parsed as YAML
and checked against the dataclass types, and unknown keys are refused.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ssl_core.errors import ConfigError, SelfsupError
from ssl_core.eval.config import ProbeConfig
from ssl_core.io import atomic_write
from ssl_core.modality import Modality, Recipe
from ssl_core.train.config import TrainConfig

SECTIONS = ("method", "data", "train", "probe")
CONFIG_FILE = "config.yaml"


@dataclass
class RunConfig:
    """The resolved configuration of one run (see the module docstring)."""

    recipe: str
    method: Any
    data: Any
    train: TrainConfig
    probe: ProbeConfig


def _omega_message(e: OmegaConfBaseException) -> str:
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    key = getattr(e, "full_key", None)
    return f"{key}: {first}" if key and key not in first else first


def base_config(modality: Modality, recipe: Recipe) -> DictConfig:
    """The recipe's defaults as a typed, closed (struct) OmegaConf tree."""
    cfg = OmegaConf.create(
        {
            "recipe": f"{modality.name}/{recipe.name}",
            "method": OmegaConf.structured(recipe.config),
            "data": OmegaConf.structured(recipe.data if recipe.data is not None else modality.data_config),
            "train": OmegaConf.structured(recipe.train),
            "probe": OmegaConf.structured(recipe.probe),
        }
    )
    OmegaConf.set_struct(cfg, True)
    return cfg


def check_overrides(items: Sequence[str]) -> list[str]:
    """Validate the form of ``key=value`` overrides and return them."""
    out = []
    for item in items:
        key, eq, _ = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"--set expects key=value (e.g. train.lr=0.1), got {item!r}")
        section = key.strip().split(".")[0]
        if section not in SECTIONS or "." not in key:
            raise ConfigError(
                f"--set {item!r}: keys start with one of {', '.join(s + '.' for s in SECTIONS)} (e.g. train.lr=0.1)"
            )
        out.append(item.strip())
    return out


_MISSING = object()


def merge(cfg: DictConfig, *, file: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> DictConfig:
    """Merge a YAML recipe file, then dotted ``key=value`` overrides, into ``cfg`` (type-checked)."""
    layers = []
    if file is not None:
        try:
            layers.append(OmegaConf.load(file))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {file}") from None
        except Exception as e:
            raise ConfigError(f"cannot read config file {file}: {str(e).splitlines()[0]}") from None
    overrides = check_overrides(overrides)
    # an index reaches into a list (method.views.0.crop_scale=[0.4,1]): those keys are set one by one
    indexed = [o for o in overrides if any(part.isdigit() for part in o.split("=", 1)[0].split("."))]
    plain = [o for o in overrides if o not in indexed]
    if plain:
        try:
            layers.append(OmegaConf.from_dotlist(plain))
        except OmegaConfBaseException as e:
            raise ConfigError(f"cannot parse --set {' '.join(plain)}: {_omega_message(e)}") from None
    for layer in layers:
        if "recipe" in layer and layer.recipe != cfg.recipe:
            raise ConfigError(f"the config is for {layer.recipe}, not {cfg.recipe}")
        try:
            cfg = OmegaConf.merge(cfg, layer)
        except OmegaConfBaseException as e:
            raise ConfigError(f"invalid setting {_omega_message(e)}") from None
    for item in indexed:
        key, text = item.split("=", 1)
        try:
            value = OmegaConf.from_dotlist([f"value={text}"]).value  # parsed as YAML, as the other keys
            if OmegaConf.select(cfg, key, default=_MISSING) is _MISSING:
                raise ConfigError(f"invalid setting {key}: no such key (or the list is shorter)")
            OmegaConf.update(cfg, key, value, merge=True)
        except OmegaConfBaseException as e:
            raise ConfigError(f"invalid setting {item}: {_omega_message(e)}") from None
    return cfg


def to_run_config(cfg: DictConfig) -> RunConfig:
    """Instantiate the dataclasses (which run their own checks in ``__post_init__``)."""
    try:
        parts = {s: OmegaConf.to_object(cfg[s]) for s in SECTIONS}
    except OmegaConfBaseException as e:
        raise ConfigError(f"invalid setting {_omega_message(e)}") from None
    except (TypeError, ValueError) as e:
        if isinstance(e, SelfsupError):
            raise
        raise ConfigError(str(e)) from None
    return RunConfig(recipe=str(cfg.recipe), **parts)


def save_config(cfg: DictConfig, run_dir: str | os.PathLike) -> Path:
    """Write ``config.yaml`` into the run folder (atomically)."""
    path = Path(run_dir) / CONFIG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        tmp.write_text(OmegaConf.to_yaml(cfg))
    return path


def load_config(run_dir: str | os.PathLike, modality: Modality, recipe: Recipe) -> DictConfig:
    """Read a run folder's ``config.yaml`` over the recipe's defaults."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a run folder: {CONFIG_FILE} is missing")
    return merge(base_config(modality, recipe), file=path)


def read_recipe_key(run_dir: str | os.PathLike) -> str:
    """The ``recipe`` entry of a run folder's ``config.yaml``."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a run folder: {CONFIG_FILE} is missing")
    try:
        return str(OmegaConf.load(path).recipe)
    except Exception as e:
        raise ConfigError(f"cannot read {path}: {str(e).splitlines()[0]}") from None

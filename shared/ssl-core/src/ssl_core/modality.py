"""What a modality package gives the core: its data, its recipes (methods) and its backbones."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ssl_core.data import DataBundle, LabeledSplit, flatten_features
from ssl_core.eval.config import ProbeConfig
from ssl_core.method import Method
from ssl_core.train.config import TrainConfig

# DataBundle, LabeledSplit and flatten_features are re-exported for modality packages.
__all__ = ["DataBundle", "LabeledSplit", "Modality", "Recipe", "flatten_features"]


@dataclass(frozen=True)
class Recipe:
    """A method with its default settings, as ``selfsup pretrain <modality>/<name>`` runs it.

    Args:
        name: the method's name on the command line (``simclr``).
        method: the :class:`Method` subclass, constructed as ``method(config, data_info)``.
        config: the method's default configuration (a dataclass instance).
        summary: one line for ``selfsup list``.
        paper: the reference (authors, year, title).
        train: default training settings, chosen so that the default run fits its stated budget.
        data: default data configuration (``None``: the modality's).
        probe: default probe settings.
        longer_run: a measured longer run of the recipe, printed under the probe table of every run, e.g.
            ``"8 epochs (about 17 min on 2 cores) reach kNN 82.3%; rerun with --epochs 8"`` (empty: none).
    """

    name: str
    method: type[Method]
    config: Any
    summary: str
    paper: str = ""
    train: TrainConfig = field(default_factory=TrainConfig)
    data: Any = None
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    longer_run: str = ""


@dataclass(frozen=True)
class Modality:
    """A modality package, as registered under the ``ssl_core.modalities`` entry-point group.

    Args:
        name: the prefix on the command line (``vision``).
        summary: one line for ``selfsup list``.
        data_config: the default data configuration, a dataclass instance with a ``path`` field that
            ``--data PATH`` sets (``None`` in ``path`` means the embedded default data set).
        load_data: ``data_config -> DataBundle``.
        recipes: the methods that work, by name.
        backbones: ``name -> builder(config dict) -> nn.Module``, used to load exported backbones.
        datasets: names and one-line descriptions of the data it can load, for ``selfsup list``.
        export_extra: ``fn(backbone, config, out_dir)`` run by ``selfsup export`` after the safetensors export,
            to write the field's own format beside it (text: a ``transformers`` folder with the tokenizer);
            ``config`` is the export's ``config.json`` content.
    """

    name: str
    summary: str
    data_config: Any
    load_data: Callable[[Any], DataBundle]
    recipes: Mapping[str, Recipe]
    backbones: Mapping[str, Callable[[dict[str, Any]], nn.Module]]
    datasets: Mapping[str, str] = field(default_factory=dict)
    export_extra: Callable[[nn.Module, dict[str, Any], Path], None] | None = None

    @staticmethod
    def recipe_map(*recipes: Recipe) -> dict[str, Recipe]:
        """Index recipes by name, refusing duplicates."""
        out: dict[str, Recipe] = {}
        for r in recipes:
            if r.name in out:
                raise ValueError(f"two recipes named {r.name!r}")
            out[r.name] = r
        return out

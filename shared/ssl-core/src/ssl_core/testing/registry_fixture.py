"""A modality object for the discovery, run and export tests (entry points must name an importable object)."""

from dataclasses import dataclass

from torch import nn

from ssl_core.modality import DataBundle, Modality, Recipe
from ssl_core.testing.toy import ToyConfig, ToyMethod, toy_dataset
from ssl_core.train.config import TrainConfig


@dataclass
class ToyDataConfig:
    """Toy data: ``n`` random vectors."""

    path: str | None = None
    n: int = 64


def _load(cfg: ToyDataConfig) -> DataBundle:
    return DataBundle(train=toy_dataset(cfg.n), info=None, description=f"{cfg.n} random vectors")


def _linear_backbone(config: dict) -> nn.Module:
    """Rebuild :class:`ToyMethod`'s backbone from its :class:`~ssl_core.method.BackboneSpec` config."""
    return nn.Linear(config["dim"], config["embed_dim"])


modality = Modality(
    name="toy",
    summary="random vectors, for tests",
    data_config=ToyDataConfig(),
    load_data=_load,
    recipes=Modality.recipe_map(
        Recipe("tiny", ToyMethod, ToyConfig(), "toy contrastive method", train=TrainConfig(lr=0.5))
    ),
    backbones={"linear": _linear_backbone},
)
not_a_modality = object()

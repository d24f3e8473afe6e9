"""The training loop, its settings, schedules, optimizers, checkpoints and logs."""

from ssl_core.train.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from ssl_core.train.config import TrainConfig
from ssl_core.train.data import PretextDataset, SeededBatchSampler, to_device
from ssl_core.train.optim import LARS, build_optimizer, param_groups
from ssl_core.train.schedules import cosine_schedule
from ssl_core.train.trainer import Trainer, TrainingError, TrainResult, seed_everything

__all__ = [
    "LARS",
    "PretextDataset",
    "SeededBatchSampler",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingError",
    "build_optimizer",
    "cosine_schedule",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_weights",
    "param_groups",
    "save_checkpoint",
    "seed_everything",
    "to_device",
]

"""Helpers for tests of the core and of modality packages: a toy method, a fixed-batch fit, a process runner, a
thread limit."""

from ssl_core.testing.distributed import run_distributed
from ssl_core.testing.fit import begin_step, fit_fixed_batch, pretext_batch, without_gradient
from ssl_core.testing.threads import torch_threads
from ssl_core.testing.toy import ToyConfig, ToyMethod, toy_dataset

__all__ = [
    "ToyConfig",
    "ToyMethod",
    "begin_step",
    "fit_fixed_batch",
    "pretext_batch",
    "run_distributed",
    "toy_dataset",
    "torch_threads",
    "without_gradient",
]

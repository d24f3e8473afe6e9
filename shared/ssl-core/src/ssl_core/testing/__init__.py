"""Helpers for tests of the core and of modality packages: a toy method and a multi-process runner."""

from ssl_core.testing.distributed import run_distributed
from ssl_core.testing.toy import ToyConfig, ToyMethod, toy_dataset

__all__ = ["ToyConfig", "ToyMethod", "run_distributed", "toy_dataset"]

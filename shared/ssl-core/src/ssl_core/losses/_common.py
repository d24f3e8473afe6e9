"""Input checks and the gathering step shared by the losses (private: not part of the API)."""

from __future__ import annotations

import torch

from ssl_core.distributed import gather_with_grad, get_rank
from ssl_core.errors import ConfigError


def check_pair(z_a: torch.Tensor, z_b: torch.Tensor, name: str) -> None:
    """Two ``(N, D)`` embeddings of one shape with at least one row."""
    if z_a.ndim != 2 or z_a.shape != z_b.shape:
        raise ValueError(
            f"{name} expects two (N, D) embeddings of the same shape, got {tuple(z_a.shape)} and {tuple(z_b.shape)}"
        )
    if z_a.shape[0] < 1:
        raise ValueError(f"{name} needs at least one pair")


def check_positive(value: float, what: str) -> None:
    if not value > 0:
        raise ConfigError(f"{what} must be positive, got {value}")


def gather(x: torch.Tensor, gather_distributed: bool) -> tuple[torch.Tensor, int]:
    """The candidates of every rank (with the gradient path) and where this rank's rows start among them.

    Losses keep their anchors local and compare them with the gathered candidates; the mean over local
    anchors, averaged over ranks by DDP, is then the loss of one process on the global batch (see
    :func:`ssl_core.distributed.gather_with_grad`).
    """
    if not gather_distributed:
        return x, 0
    return gather_with_grad(x), get_rank() * x.shape[0]


def global_mean(per_item: torch.Tensor, gather_distributed: bool) -> torch.Tensor:
    """This rank's share of the mean of per-item losses over the global batch, where ranks hold different
    numbers of items (anchors with a positive, regions seen twice).

    The local sum is divided by the mean number of items per rank, so that DDP's mean over ranks is the mean
    over every item of all ranks; without ``gather_distributed`` it is the local mean. No item gives 0.

    Args:
        per_item: this rank's per-item losses.
        gather_distributed: count the items of every rank.

    Shapes:
        - per_item: ``(M,)``; output: scalar
    """
    count = per_item.new_tensor(float(per_item.shape[0]))
    if gather_distributed:
        counts, _ = gather(count.reshape(1), True)
        count = counts.sum() / counts.shape[0]
    return per_item.sum() / count.clamp(min=1.0)

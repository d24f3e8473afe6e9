"""A first-in-first-out memory bank of features (MoCo's queue of keys, SwAV's queue of embeddings)."""

from __future__ import annotations

import torch
from torch import nn

from ssl_core.distributed import gather_with_grad
from ssl_core.errors import ConfigError


class FeatureQueue(nn.Module):
    """A fixed-size ring buffer of past features, used as extra negatives or extra Sinkhorn samples.

    MoCo (He et al., 2020, Sec. 3.2) keeps the keys of the last ``K`` samples as negatives: after each step
    the newest batch of keys is enqueued and the oldest dequeued. SwAV (Caron et al., 2020, Sec. 4) keeps
    embeddings of earlier batches so that the Sinkhorn codes are computed over more samples than one small
    batch. The queue starts empty and :attr:`features` returns only the filled rows (rather than random
    vectors as some implementations do), so no random negatives enter the loss. Its contents are buffers:
    they are saved with the method's checkpoint.

    Args:
        size: capacity ``K`` (MoCo: 65536; SwAV: 3840 for batch 256).
        dim: feature size ``D``.

    Shapes:
        - :meth:`enqueue` input: ``(N, D)``; ``N`` may exceed ``K`` (only the last ``K`` rows are kept).
        - :attr:`features`: ``(min(filled, K), D)``, oldest first.
    """

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if size < 1 or dim < 1:
            raise ConfigError(f"FeatureQueue needs a positive size and dim, got size={size}, dim={dim}")
        self.size, self.dim = size, dim
        self.register_buffer("queue", torch.zeros(size, dim))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))  # next row to write
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))

    @property
    def features(self) -> torch.Tensor:
        """The stored features, oldest first, detached from any graph."""
        n = int(self.filled)
        if n < self.size:
            return self.queue[:n].clone()
        ptr = int(self.ptr)
        return torch.cat([self.queue[ptr:], self.queue[:ptr]]).clone()

    def __len__(self) -> int:
        return int(self.filled)

    @property
    def is_full(self) -> bool:
        return int(self.filled) == self.size

    @torch.no_grad()
    def enqueue(self, x: torch.Tensor, gather_distributed: bool = False) -> None:
        """Append a batch, overwriting the oldest rows once full.

        Args:
            x: the features to store (detached).
            gather_distributed: store the batch of every rank, in rank order, so that all ranks keep the
                same queue (MoCo's ``concat_all_gather`` before ``_dequeue_and_enqueue``).
        """
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"FeatureQueue of dim {self.dim} expects (N, {self.dim}) features, got {tuple(x.shape)}")
        x = x.detach()
        if gather_distributed:
            x = gather_with_grad(x)
        x = x[-self.size :].to(self.queue.dtype)
        n, ptr = x.shape[0], int(self.ptr)
        first = min(n, self.size - ptr)
        self.queue[ptr : ptr + first] = x[:first]
        self.queue[: n - first] = x[first:]  # wrap around
        self.ptr.fill_((ptr + n) % self.size)
        self.filled.fill_(min(int(self.filled) + n, self.size))

"""Data order and per-sample seeding that make a run reproducible and resumable.

The order of samples and the random draws of every augmentation are pure functions of
``(seed, epoch, sample index)``: the sampler yields ``(index, sample_seed)`` pairs, and
:class:`PretextDataset` applies the method's pretext under that seed. A resumed run therefore sees
exactly the views it would have seen, whatever the number of data-loader workers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

_MASK64 = (1 << 63) - 1


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for one sample in one epoch (SplitMix64-style mixing of the three integers)."""
    x = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB) & _MASK64
    x ^= x >> 31
    x = (x * 0xBF58476D1CE4E5B9) & _MASK64
    x ^= x >> 27
    return x


class SeededBatchSampler(Sampler[list[tuple[int, int]]]):
    """Shuffled batches of ``(index, sample_seed)`` for one rank, restartable at any batch.

    Each epoch permutes the ``num_samples`` indices with a generator seeded by ``(seed, epoch)``, splits
    the permutation into global batches of ``batch_size * world_size`` (the incomplete last batch is
    dropped so every rank holds the same number of samples), and gives this rank its slice of each.

    Args:
        num_samples: length of the dataset.
        batch_size: samples per rank per batch.
        seed: the run's seed.
        rank, world_size: this process and the number of processes.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start_batch, self.end_batch = 0, 0, None

    @property
    def batches_per_epoch(self) -> int:
        """Complete global batches in one epoch."""
        return self.num_samples // (self.batch_size * self.world_size)

    def set_epoch(self, epoch: int, start_batch: int = 0, end_batch: int | None = None) -> None:
        """Select the epoch and the batches ``[start_batch, end_batch)`` to iterate (resuming mid-epoch,
        or stopping where the last complete group of accumulation steps ends)."""
        self.epoch, self.start_batch, self.end_batch = epoch, start_batch, end_batch

    def _end(self) -> int:
        return self.batches_per_epoch if self.end_batch is None else min(self.end_batch, self.batches_per_epoch)

    def __len__(self) -> int:
        return max(0, self._end() - self.start_batch)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        g = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, -1))
        perm = torch.randperm(self.num_samples, generator=g).tolist()
        global_batch = self.batch_size * self.world_size
        for b in range(self.start_batch, self._end()):
            lo = b * global_batch + self.rank * self.batch_size
            idx = perm[lo : lo + self.batch_size]
            yield [(i, sample_seed(self.seed, self.epoch, i)) for i in idx]


class PretextDataset(Dataset):
    """Applies a method's pretext (``sample -> training item``) under a per-sample seed.

    Indexing takes the ``(index, sample_seed)`` pairs of :class:`SeededBatchSampler`. The pretext draws
    from torch's global generator, which is seeded for the call and restored afterwards, so the caller's
    random stream is untouched.
    """

    def __init__(self, base: Sequence[Any] | Dataset, pretext: Callable[[Any], Any]) -> None:
        self.base, self.pretext = base, pretext

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)  # the CPU generator only: 50x cheaper than torch.manual_seed
            return self.pretext(self.base[index])


def to_device(batch: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Move a batch to ``device``: tensors, lists/tuples, dicts, dataclasses and objects with ``.to``
    (PyG ``Data``/``Batch``) alike. 4-D float tensors switch to channels-last when asked."""
    if isinstance(batch, torch.Tensor):
        out = batch.to(device, non_blocking=True)
        if channels_last and out.ndim == 4 and out.is_floating_point():
            out = out.contiguous(memory_format=torch.channels_last)
        return out
    if isinstance(batch, dict):
        return {k: to_device(v, device, channels_last) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(to_device(v, device, channels_last) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device, channels_last) for v in batch)
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        return dataclasses.replace(
            batch,
            **{
                f.name: to_device(getattr(batch, f.name), device, channels_last)
                for f in dataclasses.fields(batch)
                if f.init
            },
        )
    if hasattr(batch, "to"):
        return batch.to(device)
    return batch

"""Process-group helpers shared by the trainer and the losses.

Everything here works unchanged in a single process (world size 1), so code that calls
:func:`gather_with_grad` needs no special case for the non-distributed run.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job.

    Args:
        rank: global rank of this process (0 in a single-process run).
        world_size: number of processes.
        local_rank: rank on this machine; selects the CUDA device.
        device: the device this process computes on.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """True on the process that logs, writes checkpoints and runs the probes."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    Uses NCCL when the job computes on CUDA and gloo on CPU. Without ``torchrun`` (no ``WORLD_SIZE``
    in the environment, or ``WORLD_SIZE=1``) nothing is initialised and a single-process
    :class:`DistInfo` is returned.

    Args:
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device(device)
    if world_size > 1 and not is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def barrier() -> None:
    """Wait for every process; a no-op in a single process."""
    if is_initialized():
        dist.barrier()


def all_gather_object(obj):
    """Gather one picklable object from every rank, in rank order (``[obj]`` in a single process)."""
    if not is_initialized():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


class _GatherWithGrad(torch.autograd.Function):
    """All-gather whose backward returns to each rank the gradient of its own slice, summed over ranks.

    Each rank computes its loss on the gathered (global) batch, so the local slice receives gradient from
    every rank's loss: ``grad_local = sum_r dL_r / dx_local``. DDP then averages parameter gradients over
    the ``W`` ranks, which gives ``d(mean_r L_r)/dparam`` -- exactly the gradient of one process that sees
    the global batch and averages its loss over all anchors (when every rank holds the same batch size).
    The sum is an all-reduce followed by a slice, which gloo supports (it has no reduce-scatter).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        world = dist.get_world_size()
        ctx.rank, ctx.n = dist.get_rank(), x.shape[0]
        sizes = [torch.zeros((), dtype=torch.long, device=x.device) for _ in range(world)]
        dist.all_gather(sizes, torch.tensor(x.shape[0], device=x.device))
        if any(int(s) != x.shape[0] for s in sizes):
            raise ValueError(
                f"gather_with_grad needs the same batch size on every rank, got {[int(s) for s in sizes]}; "
                "drop the last incomplete batch (the trainer does)"
            )
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every rank along dim 0, keeping the gradient path to each rank's slice.

    Used by contrastive losses so that every rank sees the negatives of the global batch. In a single
    process it returns ``x`` unchanged.

    Shapes:
        - x: ``(N, *)`` on each of the ``W`` ranks (same ``N`` everywhere)
        - output: ``(W * N, *)``, rank ``r``'s rows at ``[r * N, (r + 1) * N)``
    """
    if not is_initialized() or dist.get_world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)

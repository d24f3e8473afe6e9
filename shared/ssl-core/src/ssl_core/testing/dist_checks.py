"""Functions run by :func:`ssl_core.testing.run_distributed` in the multi-process tests.

They live in the package (not in test files) so that spawned processes can import them.
"""

from __future__ import annotations

import torch
from torch.nn.parallel import DistributedDataParallel

from ssl_core.losses import nt_xent
from ssl_core.testing.toy import ToyConfig, ToyMethod


def nt_xent_grads(rank: int, world: int, z_a: torch.Tensor, z_b: torch.Tensor, temperature: float) -> dict:
    """Loss and embedding gradients of this rank's slice under the gathered NT-Xent."""
    n = len(z_a) // world
    a = z_a[rank * n : (rank + 1) * n].clone().requires_grad_(True)
    b = z_b[rank * n : (rank + 1) * n].clone().requires_grad_(True)
    loss = nt_xent(a, b, temperature, gather_distributed=True)
    # the mean over ranks of the local losses is the global loss; DDP would average parameter gradients
    (loss / world).backward()
    return {"loss": loss.detach(), "grad_a": a.grad, "grad_b": b.grad}


def ddp_param_grads(rank: int, world: int, x1: torch.Tensor, x2: torch.Tensor, seed: int) -> dict:
    """Parameter gradients of a DDP-wrapped toy method on this rank's slice of the global batch."""
    torch.manual_seed(seed)
    method = ToyMethod(ToyConfig(dim=x1.shape[1]))
    model = DistributedDataParallel(method)
    n = len(x1) // world
    out = model((x1[rank * n : (rank + 1) * n], x2[rank * n : (rank + 1) * n]))
    out.loss.backward()
    return {name: p.grad.clone() for name, p in method.named_parameters()}

"""Functions run by :func:`ssl_core.testing.run_distributed` in the multi-process tests.

They live in the package (not in test files) so that spawned processes can import them.
"""

from __future__ import annotations

import importlib

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


def _resolve(path: str):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def sliced_loss_grads(rank: int, world: int, cases: list[dict]) -> list[dict]:
    """Run each case on this rank's slice of the global batch; return its loss and input gradients.

    A case is ``{"fn": "module:function", "sliced": {arg: (tensor, dim)}, "args": {arg: value}}``: every
    ``sliced`` tensor is cut into ``world`` equal parts along ``dim`` and this rank's part becomes a leaf
    with gradient; ``args`` are passed unchanged. ``fn`` is called with ``gather_distributed=True`` unless
    the case sets ``"gather_kwarg": None``. The backward pass uses ``loss / world``, as DDP's averaging
    of parameter gradients would, so the gradients of all ranks concatenated equal those of one process
    on the global batch.
    """
    results = []
    for case in cases:
        fn = _resolve(case["fn"])
        leaves = {}
        for arg, (tensor, dim) in case["sliced"].items():
            n = tensor.shape[dim] // world
            leaves[arg] = tensor.narrow(dim, rank * n, n).clone().requires_grad_(tensor.is_floating_point())
        kwargs = dict(case.get("args", {}))
        gather_kwarg = case.get("gather_kwarg", "gather_distributed")
        if gather_kwarg is not None:
            kwargs[gather_kwarg] = True
        loss = fn(**leaves, **kwargs)
        grads = {}
        if loss.requires_grad:
            (loss / world).backward()
            grads = {arg: leaf.grad for arg, leaf in leaves.items() if leaf.grad is not None}
        results.append({"loss": loss.detach(), "grads": grads})
    return results


def one_process_loss_grads(cases: list[dict]) -> list[dict]:
    """The reference for :func:`sliced_loss_grads`: each case on the whole batch in this process."""
    results = []
    for case in cases:
        fn = _resolve(case["fn"])
        leaves = {
            arg: tensor.clone().requires_grad_(tensor.is_floating_point())
            for arg, (tensor, _) in case["sliced"].items()
        }
        loss = fn(**leaves, **case.get("args", {}))
        grads = {}
        if loss.requires_grad:
            loss.backward()
            grads = {arg: leaf.grad for arg, leaf in leaves.items() if leaf.grad is not None}
        results.append({"loss": loss.detach(), "grads": grads})
    return results


def assert_same_as_one_process(cases: list[dict], distributed: list[list[dict]], rtol=1e-5, atol=1e-6) -> None:
    """Check that the ranks' mean loss and concatenated gradients equal those of one process."""
    single = one_process_loss_grads(cases)
    for i, (case, ref) in enumerate(zip(cases, single, strict=True)):
        per_rank = [rank_results[i] for rank_results in distributed]
        mean_loss = torch.stack([r["loss"] for r in per_rank]).mean()
        torch.testing.assert_close(
            mean_loss, ref["loss"], rtol=rtol, atol=atol, msg=lambda m, c=case: f"{c['fn']}: {m}"
        )
        assert ref["grads"].keys() == per_rank[0]["grads"].keys(), case["fn"]
        for arg, grad in ref["grads"].items():
            dim = case["sliced"][arg][1]
            joined = torch.cat([r["grads"][arg] for r in per_rank], dim=dim)
            torch.testing.assert_close(
                joined, grad, rtol=rtol, atol=atol, msg=lambda m, c=case, a=arg: f"{c['fn']} d/d{a}: {m}"
            )

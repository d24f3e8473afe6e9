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


def _run_case(case: dict, leaves: dict, kwargs: dict, scale: float) -> dict:
    out = _resolve(case["fn"])(**leaves, **kwargs)
    out = out if isinstance(out, dict) else {"loss": out}
    result = {"sliced": out.get("sliced", {}), "replicated": out.get("replicated", {}), "grads": {}}
    loss = out.get("loss")
    if loss is not None:
        result["loss"] = loss.detach()
        if loss.requires_grad:
            (loss * scale).backward()
            result["grads"] = {arg: leaf.grad for arg, leaf in leaves.items() if leaf.grad is not None}
    return result


def sliced_loss_grads(rank: int, world: int, cases: list[dict]) -> list[dict]:
    """Run each case on this rank's slice of the global batch; return its loss, input gradients and state.

    A case is ``{"fn": "module:function", "sliced": {arg: (tensor, dim)}, "args": {arg: value}}``: every
    ``sliced`` tensor is cut into ``world`` equal parts along ``dim`` and this rank's part becomes a leaf
    with gradient; ``args`` are passed unchanged. ``fn`` is called with ``gather_distributed=True`` unless
    the case sets ``"gather_kwarg": None``. It returns a scalar loss, or a dict with an optional ``"loss"``,
    ``"sliced"`` outputs ``{name: (tensor, dim)}`` (per-sample, concatenated over ranks) and
    ``"replicated"`` outputs ``{name: tensor}`` (state every rank must hold alike, such as a centre).
    The backward pass uses ``loss / world``, as DDP's averaging of parameter gradients would, so the
    gradients of all ranks concatenated equal those of one process on the global batch.
    """
    results = []
    for case in cases:
        leaves = {}
        for arg, (tensor, dim) in case["sliced"].items():
            n = tensor.shape[dim] // world
            leaves[arg] = tensor.narrow(dim, rank * n, n).clone().requires_grad_(tensor.is_floating_point())
        kwargs = dict(case.get("args", {}))
        gather_kwarg = case.get("gather_kwarg", "gather_distributed")
        if gather_kwarg is not None:
            kwargs[gather_kwarg] = True
        results.append(_run_case(case, leaves, kwargs, 1.0 / world))
    return results


def one_process_loss_grads(cases: list[dict]) -> list[dict]:
    """The reference for :func:`sliced_loss_grads`: each case on the whole batch in this process."""
    results = []
    for case in cases:
        leaves = {
            arg: tensor.clone().requires_grad_(tensor.is_floating_point())
            for arg, (tensor, _) in case["sliced"].items()
        }
        results.append(_run_case(case, leaves, dict(case.get("args", {})), 1.0))
    return results


def assert_same_as_one_process(cases: list[dict], distributed: list[list[dict]], rtol=1e-5, atol=1e-6) -> None:
    """Check that the ranks' mean loss, concatenated gradients and outputs, and state equal one process's."""
    single = one_process_loss_grads(cases)
    for i, (case, ref) in enumerate(zip(cases, single, strict=True)):
        per_rank = [rank_results[i] for rank_results in distributed]
        close = lambda a, b, what, c=case: torch.testing.assert_close(  # noqa: E731
            a, b, rtol=rtol, atol=atol, msg=lambda m: f"{c['fn']} {what}: {m}"
        )
        if "loss" in ref:
            close(torch.stack([r["loss"] for r in per_rank]).mean(), ref["loss"], "loss")
        assert ref["grads"].keys() == per_rank[0]["grads"].keys(), case["fn"]
        for arg, grad in ref["grads"].items():
            dim = case["sliced"][arg][1]
            close(torch.cat([r["grads"][arg] for r in per_rank], dim=dim), grad, f"d/d{arg}")
        for name, (value, dim) in ref["sliced"].items():
            close(torch.cat([r["sliced"][name][0] for r in per_rank], dim=dim), value, name)
        for name, value in ref["replicated"].items():
            for r in per_rank:
                close(r["replicated"][name], value, name)


def dino_loss_and_center(student_out: torch.Tensor, teacher_out: torch.Tensor, gather_distributed: bool = False):
    """One :class:`~ssl_core.losses.DINOLoss` step: its loss and the centre it leaves (all-reduced over ranks)."""
    from ssl_core.losses import DINOLoss

    loss_fn = DINOLoss(student_out.shape[-1]).to(student_out.dtype)
    loss = loss_fn(student_out, teacher_out, teacher_temp=0.05)
    return {"loss": loss, "replicated": {"center": loss_fn.center.center}}


def ibot_loss_and_center(student_patches, teacher_patches, mask, gather_distributed: bool = False):
    """One :class:`~ssl_core.losses.IBOTPatchLoss` step: its loss and the patch centre it leaves."""
    from ssl_core.losses import IBOTPatchLoss

    loss_fn = IBOTPatchLoss(student_patches.shape[-1]).to(student_patches.dtype)
    loss = loss_fn(student_patches, teacher_patches, mask)
    return {"loss": loss, "replicated": {"center": loss_fn.center.center}}


def sinkhorn_codes(scores: torch.Tensor, gather_distributed: bool = False):
    """Sinkhorn-Knopp codes of this rank's samples."""
    from ssl_core.losses import sinkhorn_knopp

    return {"sliced": {"codes": (sinkhorn_knopp(scores.detach(), gather_distributed=gather_distributed), 0)}}


def queue_after_enqueue(features: torch.Tensor, gather_distributed: bool = False):
    """The contents of a :class:`~ssl_core.teacher.FeatureQueue` after enqueueing this rank's features."""
    from ssl_core.teacher import FeatureQueue

    queue = FeatureQueue(size=6, dim=features.shape[1]).to(features.dtype)  # holds less than the global batch
    queue.enqueue(features, gather_distributed=gather_distributed)
    return {"replicated": {"queue": queue.features}}


def mgda_weights(x: torch.Tensor, gather_distributed: bool = False):
    """MGDA weights of two regression tasks on a shared linear layer, from this rank's samples."""
    from ssl_core.losses import MultiTaskLoss

    torch.manual_seed(0)
    shared, head_a, head_b = (torch.nn.Linear(x.shape[1], 4), torch.nn.Linear(4, 1), torch.nn.Linear(4, 1))
    shared, head_a, head_b = shared.to(x.dtype), head_a.to(x.dtype), head_b.to(x.dtype)
    h = shared(x)
    losses = {"a": (head_a(h) - 1).pow(2).mean(), "b": (head_b(h) + x[:, :1]).pow(2).mean()}
    mtl = MultiTaskLoss(["a", "b"], weighting="mgda", gather_distributed=gather_distributed)
    _, weights = mtl(losses, shared.parameters())
    return {"replicated": {"weights": torch.tensor([weights["a"], weights["b"]], dtype=torch.float64)}}


def region_contrastive_per_image(
    feats_a, regions_a, feats_b, regions_b, regions_per_image: int, gather_distributed: bool = False
):
    """:func:`~ssl_core.losses.region_contrastive` on a batch of images with ``S`` regions each: region ids are
    offset per image, so the global order of regions is the rank-major order that gathering produces."""
    from ssl_core.losses import region_contrastive

    b, s = feats_a.shape[0], regions_per_image
    offsets = (torch.arange(b) * s)[:, None]
    ra = torch.where(regions_a >= 0, regions_a + offsets, -1).flatten()
    rb = torch.where(regions_b >= 0, regions_b + offsets, -1).flatten()
    return region_contrastive(
        feats_a.flatten(0, 1), ra, feats_b.flatten(0, 1), rb, b * s, 0.1, gather_distributed=gather_distributed
    )

"""The contrastive losses hand their denominator to the tiled kernels above the size threshold.

`impl="auto"` must switch from the dense formula to the chunked kernel exactly at the threshold, forced
implementations (argument or SSL_CORE_KERNEL) must agree with the dense one in values and gradients, and
the gathered (two-process) losses must still equal one process on the global batch.
"""

import importlib.util
from dataclasses import replace

import pytest
import torch

import ssl_core.kernels.contrastive as contrastive_kernels
from ssl_core.kernels import IMPLEMENTATIONS
from ssl_core.losses import dcl, dclw, info_nce, nt_xent

HAS_TRITON = importlib.util.find_spec("triton") is not None


def _pair(n, d, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype), torch.randn(n, d, generator=g, dtype=dtype)


LOSSES = {
    "nt_xent": lambda a, b, impl, t=0.2: nt_xent(a, b, t, impl=impl),
    "dcl": lambda a, b, impl, t=0.2: dcl(a, b, t, impl=impl),
    "dclw": lambda a, b, impl, t=0.2: dclw(a, b, t, 0.5, impl=impl),
    "info_nce": lambda a, b, impl, t=0.2: info_nce(a, b, temperature=t, impl=impl),
    "info_nce_queue": lambda a, b, impl, t=0.2: info_nce(a, b, _pair(37, a.shape[1], 9, a.dtype)[0], t, impl=impl),
}


def _loss_and_grads(loss, a, b, impl, **kwargs):
    a, b = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    value = loss(a, b, impl, **kwargs)
    return (value, *torch.autograd.grad(value, (a, b)))


@pytest.fixture
def calls(monkeypatch):
    """Records which path computed each denominator (the dense formula of the loss makes no kernel call)."""
    monkeypatch.delenv("SSL_CORE_KERNEL", raising=False)
    seen = []
    original = contrastive_kernels.chunked_similarity_logsumexp
    monkeypatch.setattr(
        contrastive_kernels, "chunked_similarity_logsumexp", lambda *a, **k: seen.append("chunked") or original(*a, **k)
    )
    return seen


def _threshold(monkeypatch, size):
    rows = tuple(replace(r, min_size=size) if r.name != "dense" else r for r in IMPLEMENTATIONS["contrastive"])
    monkeypatch.setitem(IMPLEMENTATIONS, "contrastive", rows)


@pytest.mark.parametrize("name", LOSSES)
def test_auto_switches_to_the_chunked_kernel_above_the_threshold_with_the_same_values(name, calls, monkeypatch):
    loss = LOSSES[name]
    n = 12
    # anchors x candidates of each loss at n pairs: 2n x 2n (NT-Xent, DCL), n x n (InfoNCE), n x 37 (queue)
    size = {"info_nce": n * n, "info_nce_queue": n * 37}.get(name, 4 * n * n)
    _threshold(monkeypatch, size)
    a, b = _pair(n, 6, seed=len(name))
    above = _loss_and_grads(loss, a, b, "auto")
    assert calls == ["chunked"]
    dense = _loss_and_grads(loss, a, b, "dense")
    assert calls == ["chunked"]
    for x, y in zip(above, dense, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)
    _threshold(monkeypatch, size + 1)  # one more similarity than the batch has: stays dense
    _loss_and_grads(loss, a, b, "auto")
    assert calls == ["chunked"]


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("n,temperature", [(3, 1.0), (50, 0.1), (97, 0.05)])
def test_forced_chunked_matches_dense_in_float32(name, n, temperature, calls):
    loss = LOSSES[name]
    a, b = _pair(n, 32, seed=n, dtype=torch.float32)
    chunked = _loss_and_grads(loss, a, b, "chunked", t=temperature)
    dense = _loss_and_grads(loss, a, b, "dense", t=temperature)
    assert calls == ["chunked"]
    for x, y in zip(chunked, dense, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


def test_environment_variable_forces_the_kernel(calls, monkeypatch):
    a, b = _pair(5, 4, seed=1)
    monkeypatch.setenv("SSL_CORE_KERNEL", "contrastive=chunked")
    forced = nt_xent(a, b, 0.5)
    assert calls == ["chunked"]
    torch.testing.assert_close(forced, nt_xent(a, b, 0.5, impl="dense"))


def test_lightly_agrees_with_the_chunked_path():
    lightly_loss = pytest.importorskip("lightly.loss")
    a, b = _pair(64, 32, seed=4, dtype=torch.float32)
    ours = nt_xent(a, b, 0.1, impl="chunked")
    peer = lightly_loss.NTXentLoss(temperature=0.1)(a, b)
    torch.testing.assert_close(ours, peer, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not HAS_TRITON, reason="Triton is not installed")
def test_triton_through_nt_xent(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # ignored on CUDA tensors
    device = "cuda" if torch.cuda.is_available() else "cpu"
    a, b = (x.to(device) for x in _pair(10, 16, seed=5, dtype=torch.float32))
    ours = _loss_and_grads(LOSSES["nt_xent"], a, b, "triton")
    dense = _loss_and_grads(LOSSES["nt_xent"], a, b, "dense")
    for x, y in zip(ours, dense, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


@pytest.mark.distributed
def test_gathered_chunked_losses_equal_one_process(monkeypatch):
    from ssl_core.testing import run_distributed
    from ssl_core.testing.dist_checks import assert_same_as_one_process, sliced_loss_grads

    g = torch.Generator().manual_seed(0)
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    pair = {"z_a": (r(8, 5), 0), "z_b": (r(8, 5), 0)}
    cases = [
        {"fn": "ssl_core.losses:nt_xent", "sliced": pair, "args": {"temperature": 0.3}},
        {"fn": "ssl_core.losses:info_nce", "sliced": {"query": (r(8, 5), 0), "key": (r(8, 5), 0)}},
        {"fn": "ssl_core.losses:dcl", "sliced": pair, "args": {"temperature": 0.3}},
        {"fn": "ssl_core.losses:dclw", "sliced": pair, "args": {"temperature": 0.3, "sigma": 0.5}},
    ]
    monkeypatch.setenv("SSL_CORE_KERNEL", "contrastive=chunked")  # inherited by the spawned processes
    distributed = run_distributed(sliced_loss_grads, 2, cases)
    monkeypatch.delenv("SSL_CORE_KERNEL")  # the one-process reference uses the dense formula
    assert_same_as_one_process(cases, distributed)

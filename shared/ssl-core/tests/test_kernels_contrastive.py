"""Tiled log-sum-exp of similarities (the denominator of NT-Xent / InfoNCE / DCL) against the formula.

The naive reference is written from the definition, one anchor at a time in float64; the dense, chunked and
Triton paths must match it in values and gradients. The Triton kernels run under TRITON_INTERPRET=1 on CPU
(set by the root conftest.py when there is no GPU), on small odd shapes that cross several tiles.
"""

import importlib.util
import math
from dataclasses import replace

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ssl_core.errors import ConfigError
from ssl_core.kernels import IMPLEMENTATIONS, select, similarity_logsumexp
from ssl_core.kernels.contrastive.reference import chunked_similarity_logsumexp, dense_similarity_logsumexp

HAS_TRITON = importlib.util.find_spec("triton") is not None
# small tiles so that odd sizes span several of them (tl.dot needs at least 16 in every dimension)
SMALL_TILES = {"block_m": 16, "block_n": 16, "block_d": 16, "block_out": 16}


def naive_lse(a: torch.Tensor, c: torch.Tensor, temperature: float, exclude: torch.Tensor | None) -> torch.Tensor:
    """lse_i = log sum_{k not in E_i} exp(a_i . c_k / tau), anchor by anchor, in float64."""
    out = []
    for i in range(a.shape[0]):
        left_out = set() if exclude is None else {int(e) for e in exclude[i] if e >= 0}
        terms = [(a[i].double() @ c[k].double()) / temperature for k in range(c.shape[0]) if k not in left_out]
        out.append(torch.logsumexp(torch.stack(terms), 0) if terms else torch.tensor(-math.inf, dtype=torch.float64))
    return torch.stack(out)


def _inputs(m, k, d, dtype=torch.float32, seed=0, n_exclude=1):
    g = torch.Generator().manual_seed(seed)
    a = torch.nn.functional.normalize(torch.randn(m, d, generator=g), dim=1).to(dtype).requires_grad_(True)
    c = torch.nn.functional.normalize(torch.randn(k, d, generator=g), dim=1).to(dtype).requires_grad_(True)
    exclude = torch.randint(-1, k, (m, n_exclude), generator=g) if n_exclude else None
    weights = torch.rand(m, generator=g, dtype=torch.float64) + 0.5  # an upstream gradient that is not all ones
    return a, c, exclude, weights


def _value_and_grads(fn, a, c, exclude, weights, temperature, **kwargs):
    a_, c_ = a.detach().clone().requires_grad_(True), c.detach().clone().requires_grad_(True)
    lse = fn(a_, c_, temperature, exclude, **kwargs)
    finite = torch.isfinite(lse)
    ga, gc = torch.autograd.grad((lse[finite].double() * weights[finite]).sum(), (a_, c_))
    return lse.double(), ga.double(), gc.double()


def _assert_matches(ours, ref, rtol, atol):
    for x, y in zip(ours, ref, strict=True):
        torch.testing.assert_close(x, y, rtol=rtol, atol=atol)


def _scaled(fn):
    """The path functions take 1 / temperature; the reference takes the temperature."""
    return lambda a, c, t, ex, **kw: fn(a, c, 1.0 / t, ex, **kw)


@pytest.mark.parametrize("m,k,d", [(1, 2, 3), (7, 7, 5), (23, 31, 17), (40, 19, 9)])
@pytest.mark.parametrize("temperature", [0.07, 0.5, 2.0])
@pytest.mark.parametrize("n_exclude", [0, 1, 2])
def test_dense_and_chunked_match_the_formula(m, k, d, temperature, n_exclude):
    a, c, ex, w = _inputs(m, k, d, torch.float64, seed=m * k + d, n_exclude=n_exclude)
    ref = _value_and_grads(naive_lse, a, c, ex, w, temperature)
    dense = _value_and_grads(_scaled(dense_similarity_logsumexp), a, c, ex, w, temperature)
    # a block of 3 rows: many blocks, the last one ragged
    chunked = _value_and_grads(_scaled(chunked_similarity_logsumexp), a, c, ex, w, temperature, block_bytes=3 * k * 8)
    _assert_matches(dense, ref, 1e-10, 1e-12)
    _assert_matches(chunked, ref, 1e-10, 1e-12)


@pytest.mark.parametrize("rows_per_block", [7, 64, 10_000])
@pytest.mark.parametrize("temperature", [0.05, 0.2, 1.0])
def test_chunked_matches_dense_in_float32(rows_per_block, temperature):
    a, c, ex, w = _inputs(97, 131, 32, torch.float32, seed=rows_per_block, n_exclude=2)
    dense = _value_and_grads(_scaled(dense_similarity_logsumexp), a, c, ex, w, temperature)
    chunked = _value_and_grads(
        _scaled(chunked_similarity_logsumexp), a, c, ex, w, temperature, block_bytes=rows_per_block * 131 * 4
    )
    _assert_matches(chunked, dense, 1e-5, 2e-5)  # gradients reach ~1/temperature: float32 rounding ~1e-6 * 20


def test_chunked_gradcheck_with_shared_anchors_and_candidates():
    g = torch.Generator().manual_seed(3)
    z = torch.randn(9, 4, generator=g, dtype=torch.float64, requires_grad=True)
    exclude = torch.arange(9)[:, None]  # NT-Xent: every anchor is also a candidate, itself left out
    assert torch.autograd.gradcheck(
        lambda x: chunked_similarity_logsumexp(x, x, 3.0, exclude, block_bytes=2 * 9 * 8), z
    )


def test_rows_with_every_candidate_excluded_give_minus_infinity_and_no_gradient():
    a, c, _, _ = _inputs(4, 2, 3, torch.float64)
    exclude = torch.tensor([[0, 1], [1, 0], [0, -1], [-1, -1]])
    for fn in (dense_similarity_logsumexp, chunked_similarity_logsumexp):
        a_, c_ = a.detach().clone().requires_grad_(True), c.detach().clone().requires_grad_(True)
        lse = fn(a_, c_, 2.0, exclude)
        assert torch.isneginf(lse[:2]).all() and torch.isfinite(lse[2:]).all()
        lse[2:].sum().backward()
        assert torch.isfinite(a_.grad).all() and torch.isfinite(c_.grad).all()
        assert (a_.grad[:2] == 0).all()


class _LargestTensor(TorchDispatchMode):
    """Records the most elements of any tensor an operation returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_chunked_never_builds_the_full_similarity_matrix():
    m = k = 512
    a, c, ex, _ = _inputs(m, k, 4, torch.float32, n_exclude=1)  # inputs and gradients (M x 4) stay small
    rows = 8
    with _LargestTensor() as seen:
        lse = chunked_similarity_logsumexp(a, c, 10.0, ex, block_bytes=rows * k * 4)
        lse.sum().backward()
    assert seen.largest <= rows * k < m * k
    with _LargestTensor() as dense_seen:
        dense_similarity_logsumexp(a, c, 10.0, ex).sum().backward()
    assert dense_seen.largest >= m * k  # the tracker does see an (M, K) matrix when one is made


@pytest.mark.skipif(not HAS_TRITON, reason="Triton is not installed")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("m,k,d,n_exclude", [(37, 45, 19, 1), (20, 33, 40, 2), (17, 16, 16, 0)])
def test_triton_matches_the_reference(dtype, m, k, d, n_exclude):
    from ssl_core.kernels.contrastive.triton import triton_similarity_logsumexp

    a, c, ex, w = _inputs(m, k, d, dtype, seed=m + k + d, n_exclude=n_exclude)
    a64, c64 = a.detach().double(), c.detach().double()  # the reference sees the same (rounded) inputs
    ref = _value_and_grads(naive_lse, a64, c64, ex, w, 0.1)
    ours = _value_and_grads(
        lambda a_, c_, t, e: triton_similarity_logsumexp(a_, c_, 1.0 / t, e, SMALL_TILES), a, c, ex, w, 0.1
    )
    tol = {torch.float32: (1e-5, 1e-5), torch.float16: (2e-3, 2e-3)}[dtype]
    _assert_matches(ours, ref, *tol)


@pytest.mark.skipif(not HAS_TRITON, reason="Triton is not installed")
def test_triton_through_the_public_function_and_shared_inputs(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # on a CUDA machine the tensors below are CUDA ones anyway
    device = "cuda" if torch.cuda.is_available() else "cpu"
    z = torch.nn.functional.normalize(torch.randn(24, 16), dim=1).to(device).requires_grad_(True)
    exclude = torch.arange(24, device=device)[:, None]
    lse = similarity_logsumexp(z, z, 0.2, exclude, impl="triton")
    (grad,) = torch.autograd.grad(lse.sum(), z)
    z64 = z.detach().double().requires_grad_(True)
    ref = dense_similarity_logsumexp(z64, z64, 5.0, exclude)
    (ref_grad,) = torch.autograd.grad(ref.sum(), z64)
    torch.testing.assert_close(lse.double(), ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=1e-4, atol=1e-5)


def _min_size(op, name):
    return next(row.min_size for row in IMPLEMENTATIONS[op] if row.name == name)


def test_automatic_choice_by_size_and_device(monkeypatch):
    monkeypatch.delenv("SSL_CORE_KERNEL", raising=False)
    cpu = torch.device("cpu")
    chunked_from = _min_size("contrastive", "chunked")
    assert chunked_from > 0
    assert select("contrastive", cpu, torch.float32, chunked_from - 1).name == "dense"
    assert select("contrastive", cpu, torch.float32, chunked_from).name == "chunked"
    assert select("contrastive", cpu, torch.float64, chunked_from).name == "chunked"
    # the interpreter is never chosen automatically, only when forced
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert select("contrastive", cpu, torch.float32, 10**12).name == "chunked"


def test_public_function_switches_above_the_threshold_with_the_same_values(monkeypatch):
    monkeypatch.delenv("SSL_CORE_KERNEL", raising=False)
    import ssl_core.kernels.contrastive as contrastive

    calls = []
    for name in ("dense_similarity_logsumexp", "chunked_similarity_logsumexp"):
        original = getattr(contrastive, name)
        monkeypatch.setattr(contrastive, name, lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))
    rows = tuple(replace(r, min_size=64 * 64) if r.name != "dense" else r for r in IMPLEMENTATIONS["contrastive"])
    monkeypatch.setitem(IMPLEMENTATIONS, "contrastive", rows)
    a, c, ex, _ = _inputs(64, 64, 8, n_exclude=1)
    above = similarity_logsumexp(a, c, 0.1, ex)
    below = similarity_logsumexp(a[:63], c, 0.1, ex[:63])
    assert calls == ["chunked_similarity_logsumexp", "dense_similarity_logsumexp"]
    torch.testing.assert_close(above[:63], below, rtol=1e-6, atol=1e-6)


def test_environment_variable_and_argument_force_an_implementation(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setenv("SSL_CORE_KERNEL", "chunked")
    assert select("contrastive", cpu, torch.float32, 1).name == "chunked"
    assert select("knn", cpu, torch.float32, 1).name == "chunked"
    assert select("fps", cpu, torch.float32, 1).name == "numpy"  # no "chunked" FPS: automatic choice
    assert select("contrastive", cpu, torch.float32, 1, impl="dense").name == "dense"  # the argument wins
    monkeypatch.setenv("SSL_CORE_KERNEL", "contrastive=dense, knn=kdtree")
    assert select("contrastive", cpu, torch.float32, 10**12).name == "dense"
    assert select("knn", cpu, torch.float32, 1).name == "kdtree"
    monkeypatch.setenv("SSL_CORE_KERNEL", "contrastiv=dense")
    with pytest.raises(ConfigError, match="operator 'contrastiv'"):
        select("contrastive", cpu, torch.float32, 1)
    monkeypatch.setenv("SSL_CORE_KERNEL", "contrastive=fast")
    with pytest.raises(ConfigError, match="SSL_CORE_KERNEL='fast' is not an implementation of contrastive"):
        select("contrastive", cpu, torch.float32, 1)


def test_forced_implementations_that_cannot_run_are_clear_errors(monkeypatch):
    monkeypatch.delenv("SSL_CORE_KERNEL", raising=False)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    cpu = torch.device("cpu")
    with pytest.raises(ConfigError, match="impl='triton' cannot run contrastive here: .*CUDA"):
        select("contrastive", cpu, torch.float32, 1, impl="triton")
    with pytest.raises(ConfigError, match="impl='sparse' is not an implementation of contrastive"):
        select("contrastive", cpu, torch.float32, 1, impl="sparse")
    with pytest.raises(ConfigError, match="float64"):
        select("fps", torch.device("cuda"), torch.float64, 1, impl="triton")


def test_input_errors():
    a = torch.randn(4, 3)
    with pytest.raises(ValueError, match="anchors"):
        similarity_logsumexp(a, torch.randn(4, 5), 0.1)
    with pytest.raises(ConfigError, match="temperature"):
        similarity_logsumexp(a, a, 0.0)
    with pytest.raises(ValueError, match="exclude"):
        similarity_logsumexp(a, a, 0.1, torch.zeros(4, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="int64"):
        similarity_logsumexp(a, a, 0.1, torch.zeros(4, 1, dtype=torch.int32))

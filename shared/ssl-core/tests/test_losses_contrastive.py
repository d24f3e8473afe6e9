"""InfoNCE (MoCo), DCL and DCLW against naive references from the papers' equations and against peers.

NT-Xent's own reference tests live in test_nt_xent.py; here it is compared with MONAI.
"""

import importlib.util
import math
import pathlib

import pytest
import torch

from ssl_core.losses import DCLLoss, DCLWLoss, InfoNCELoss, dcl, dclw, info_nce, nt_xent

F64 = dict(rtol=1e-10, atol=1e-12)
F32 = dict(rtol=1e-4, atol=1e-5)


def unit(x):
    return x / x.norm(dim=-1, keepdim=True)


def naive_info_nce(q, k, queue, t):
    """MoCo eq. 1, query by query: the positive key against the queue (or against the batch's keys)."""
    q, k = unit(q.double()), unit(k.double())
    total = 0.0
    for i in range(len(q)):
        if queue is not None:
            cands = [q[i] @ k[i]] + [q[i] @ m for m in unit(queue.double())]
        else:
            cands = [q[i] @ kj for kj in k]
        pos = q[i] @ k[i]
        total = total - (pos / t - torch.logsumexp(torch.stack(cands) / t, 0))
    return total / len(q)


def naive_dcl(z_a, z_b, t, w=None):
    """DCL eq. 6 summed over both views k and all i, anchor by anchor (mean over the 2N anchors)."""
    views = [unit(z_a.double()), unit(z_b.double())]
    n = len(z_a)
    w = torch.ones(n, dtype=torch.float64) if w is None else w.double()
    total = 0.0
    for k in range(2):
        for i in range(n):
            pos = views[0][i] @ views[1][i] / t
            negs = [views[k][i] @ views[m][j] / t for m in range(2) for j in range(n) if j != i]
            total = total + (-w[i] * pos + torch.logsumexp(torch.stack(negs), 0))
    return total / (2 * n)


def vmf_weights(z_a, z_b, sigma):
    """DCLW eq. 7: w_i = 2 - exp(s_i / sigma) / mean_j exp(s_j / sigma), from the paper's formula."""
    s = (unit(z_a.double()) * unit(z_b.double())).sum(1).detach() / sigma
    return 2 - torch.exp(s) / torch.exp(s).mean()


def _pair(n, d, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=g, dtype=dtype, requires_grad=True)
    b = torch.randn(n, d, generator=g, dtype=dtype, requires_grad=True)
    return a, b


def _values_and_grads(fn, ref, inputs, dtype):
    ours = fn(*inputs)
    g_ours = torch.autograd.grad(ours, inputs)
    copies = [x.detach().clone().requires_grad_(True) for x in inputs]
    expected = ref(*copies)
    g_ref = torch.autograd.grad(expected, copies)
    tol = F32 if dtype == torch.float32 else F64
    torch.testing.assert_close(ours.double(), expected.double(), **tol)
    for a, b in zip(g_ours, g_ref, strict=True):
        torch.testing.assert_close(a.double(), b.double(), **tol)


@pytest.mark.parametrize("n,d,k", [(1, 3, 5), (6, 5, 0), (13, 7, 29)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_info_nce_matches_naive(n, d, k, dtype):
    q, key = _pair(n, d, dtype, n + d + k)
    queue = torch.randn(k, d, dtype=dtype, generator=torch.Generator().manual_seed(k)) if k else None
    _values_and_grads(
        lambda a, b: info_nce(a, b, queue, 0.2), lambda a, b: naive_info_nce(a, b, queue, 0.2), (q, key), dtype
    )


@pytest.mark.parametrize("n,d", [(2, 3), (7, 5), (20, 11)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dcl_and_dclw_match_naive(n, d, dtype):
    a, b = _pair(n, d, dtype, 10 * n + d)
    _values_and_grads(lambda x, y: dcl(x, y, 0.3), lambda x, y: naive_dcl(x, y, 0.3), (a, b), dtype)
    _values_and_grads(
        lambda x, y: dclw(x, y, 0.3, sigma=0.5),
        lambda x, y: naive_dcl(x, y, 0.3, vmf_weights(x, y, 0.5)),
        (a, b),
        dtype,
    )


def test_gradcheck():
    a, b = _pair(4, 3, torch.float64, 0)
    queue = torch.randn(6, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x, y: info_nce(x, y, queue, 0.3), (a, b))
    assert torch.autograd.gradcheck(lambda x, y: info_nce(x, y, None, 0.3), (a, b))
    assert torch.autograd.gradcheck(lambda x, y: dcl(x, y, 0.3), (a, b))
    # DCLW's weights are constants for the gradient (see dclw), so check dcl with fixed weights
    w = torch.tensor([0.5, 1.0, 1.5, 2.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x, y: dcl(x, y, 0.3, weight_fn=lambda *_: w), (a, b))


def test_dcl_is_nt_xent_without_the_positive_in_the_denominator():
    # with one negative pair the two losses are computable by hand: N = 2, orthogonal samples
    e = torch.eye(2)
    t = 0.5
    # every anchor: positive sim 1, negatives: the other sample's two views at sim 0
    assert dcl(e, e, t).item() == pytest.approx(-1 / t + math.log(2), rel=1e-6)
    assert nt_xent(e, e, t).item() == pytest.approx(-(1 / t) + math.log(math.exp(1 / t) + 2), rel=1e-6)


def test_symmetry_and_invariances():
    a, b = torch.randn(9, 6), torch.randn(9, 6)
    torch.testing.assert_close(dcl(a, b), dcl(b, a))
    torch.testing.assert_close(dclw(a, b), dclw(b, a))
    torch.testing.assert_close(dcl(2 * a, 0.5 * b), dcl(a, b))
    perm = torch.randperm(9)
    torch.testing.assert_close(dcl(a[perm], b[perm]), dcl(a, b))
    torch.testing.assert_close(info_nce(a[perm], b[perm]), info_nce(a, b))
    # identical weights make DCLW equal to DCL: all positive pairs equally similar
    torch.testing.assert_close(dclw(a, a), dcl(a, a))


def test_matches_lightly_dcl_and_dclw():
    lightly_loss = pytest.importorskip("lightly.loss")
    for n, d, t in [(8, 16, 0.1), (31, 7, 0.5)]:
        a, b = _pair(n, d, torch.float32, n)
        for ours_fn, peer_fn in [
            (DCLLoss(temperature=t), lightly_loss.DCLLoss(temperature=t)),
            (DCLWLoss(temperature=t, sigma=0.5), lightly_loss.DCLWLoss(temperature=t, sigma=0.5)),
        ]:
            ours = ours_fn(a, b)
            peer = peer_fn(a, b)
            torch.testing.assert_close(ours, peer, rtol=1e-5, atol=1e-5)
            for g1, g2 in zip(torch.autograd.grad(ours, (a, b)), torch.autograd.grad(peer, (a, b)), strict=True):
                torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-6)


def test_info_nce_with_queue_matches_lightly_memory_bank():
    lightly_loss = pytest.importorskip("lightly.loss")
    n, d, k, t = 12, 16, 40, 0.2
    q, key = _pair(n, d, torch.float32, 3)
    peer = lightly_loss.NTXentLoss(temperature=t, memory_bank_size=(k, d))
    queue = peer.memory_bank.bank.clone()  # lightly starts from random unit vectors
    ours = InfoNCELoss(temperature=t)(q, key, queue)
    theirs = peer(q, key)  # uses the bank before enqueueing `key`
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    for g1, g2 in zip(torch.autograd.grad(ours, (q, key)), torch.autograd.grad(theirs, (q, key)), strict=True):
        torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-6)


def _monai_contrastive_module():
    """MONAI's ``losses/contrastive.py`` loaded on its own: it imports only torch, while ``import monai``
    takes 10-20 s, most of this file's run time."""
    spec = importlib.util.find_spec("monai")
    if spec is None:
        pytest.skip("MONAI is not installed")
    path = pathlib.Path(spec.origin).parent / "losses" / "contrastive.py"
    module_spec = importlib.util.spec_from_file_location("monai_contrastive_peer", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_nt_xent_matches_monai():
    a, b = _pair(10, 8, torch.float32, 5)
    ours = nt_xent(a, b, 0.5)
    theirs = _monai_contrastive_module().ContrastiveLoss(temperature=0.5)(a, b)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    for g1, g2 in zip(torch.autograd.grad(ours, (a, b)), torch.autograd.grad(theirs, (a, b)), strict=True):
        torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-6)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="queue"):
        info_nce(torch.randn(3, 4), torch.randn(3, 4), torch.randn(5, 3))
    with pytest.raises(ValueError, match="same shape"):
        dcl(torch.randn(3, 4), torch.randn(2, 4))
    with pytest.raises(ValueError, match="two pairs"):
        dcl(torch.randn(1, 4), torch.randn(1, 4))
    with pytest.raises(ValueError, match="sigma"):
        dclw(torch.randn(3, 4), torch.randn(3, 4), sigma=0.0)
    with pytest.raises(ValueError, match="weight_fn"):
        dcl(torch.randn(3, 4), torch.randn(3, 4), weight_fn=lambda a, b: torch.ones(2))

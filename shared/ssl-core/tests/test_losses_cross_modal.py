"""SupCon, CLIP, MIL-NCE, region-pooled (SLidR), TACO and triplet losses against references written from
the papers' equations and the authors' published loss code."""

import math

import pytest
import torch
import torch.nn.functional as F

from ssl_core.losses import (
    CLIPLoss,
    TACOLoss,
    TripletLoss,
    clip_loss,
    mil_nce,
    nt_xent,
    region_contrastive,
    region_pool,
    supcon,
    taco,
    triplet,
)

F64 = dict(rtol=1e-9, atol=1e-11)


def unit(x):
    return x / x.norm(dim=-1, keepdim=True)


def _grads(fn, inputs):
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    out = fn(*leaves)
    return out, torch.autograd.grad(out, leaves)


def assert_same(fn, ref, inputs, tol=F64):
    out, grads = _grads(fn, inputs)
    out_ref, grads_ref = _grads(ref, inputs)
    torch.testing.assert_close(out, out_ref, **tol)
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a, b, **tol)


def naive_supcon(z, labels, t):
    """Khosla et al. eq. 2, anchor by anchor, over the flattened views; anchors without positives skipped."""
    n, v, _ = z.shape
    flat, lab = unit(z).reshape(n * v, -1), labels.repeat_interleave(v)
    total, count = 0.0, 0
    for i in range(n * v):
        others = [a for a in range(n * v) if a != i]
        positives = [p for p in others if lab[p] == lab[i]]
        if not positives:
            continue
        log_den = torch.logsumexp(torch.stack([flat[i] @ flat[a] / t for a in others]), 0)
        total = total - sum(flat[i] @ flat[p] / t - log_den for p in positives) / len(positives)
        count += 1
    return total / count


@pytest.mark.parametrize("n,v,classes", [(6, 2, 3), (7, 1, 2), (5, 3, 5)])
def test_supcon_matches_naive(n, v, classes):
    g = torch.Generator().manual_seed(n + v)
    z = torch.randn(n, v, 4, generator=g, dtype=torch.float64)
    labels = torch.randint(0, classes, (n,), generator=g)
    assert_same(lambda x: supcon(x, labels, 0.2), lambda x: naive_supcon(x, labels, 0.2), [z])


def test_supcon_with_distinct_labels_is_nt_xent():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    torch.testing.assert_close(supcon(torch.stack([a, b], 1), torch.arange(8), 0.5), nt_xent(a, b, 0.5))


def naive_clip(a, b, t):
    a, b = unit(a), unit(b)
    n = len(a)
    total = 0.0
    for i in range(n):
        total = total - (a[i] @ b[i] / t - torch.logsumexp(torch.stack([a[i] @ b[j] / t for j in range(n)]), 0))
        total = total - (b[i] @ a[i] / t - torch.logsumexp(torch.stack([b[i] @ a[j] / t for j in range(n)]), 0))
    return total / (2 * n)


def test_clip_loss_matches_naive_and_learns_its_temperature():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(7, 5, generator=g, dtype=torch.float64), torch.randn(7, 5, generator=g, dtype=torch.float64)
    assert_same(lambda x, y: clip_loss(x, y, 0.1), lambda x, y: naive_clip(x, y, 0.1), [a, b])
    torch.testing.assert_close(clip_loss(a, b), clip_loss(b, a))  # symmetric
    loss_fn = CLIPLoss(temperature=0.07, learnable=True).double()
    out = loss_fn(a, b)
    torch.testing.assert_close(out, clip_loss(a, b, 0.07))
    out.backward()
    assert loss_fn.logit_scale.grad is not None


def miech_mil_nce(video, text):
    """``MILNCELoss.forward`` of antoine77340/MIL-NCE_HowTo100M (loss.py), on (B, D) and (B * P, D)."""
    x = video @ text.T
    x = x.view(video.shape[0], video.shape[0], -1)
    nominator = x * torch.eye(x.shape[0], dtype=x.dtype)[:, :, None]
    nominator = nominator.sum(dim=1)
    nominator = torch.logsumexp(nominator, dim=1)
    denominator = torch.cat((x, x.permute(1, 0, 2)), dim=1).view(x.shape[0], -1)
    denominator = torch.logsumexp(denominator, dim=1)
    return torch.mean(denominator - nominator)


@pytest.mark.parametrize("n,p", [(4, 1), (6, 3), (3, 5)])
def test_mil_nce_matches_the_authors_code(n, p):
    g = torch.Generator().manual_seed(n * p)
    video = torch.randn(n, 6, generator=g, dtype=torch.float64)
    text = torch.randn(n, p, 6, generator=g, dtype=torch.float64)
    t = 0.3
    assert_same(
        lambda v, x: mil_nce(v, x, t),
        lambda v, x: miech_mil_nce(unit(v) / t, unit(x).reshape(n * p, -1)),
        [video, text],
    )


def naive_region(fa, ra, fb, rb, num_regions, t):
    """SLidR eq. 2 with explicit pooling: normalised features averaged in each region seen by both sides."""
    fa, fb = unit(fa), unit(fb)
    pooled = {}
    for s in range(num_regions):
        ia, ib = (ra == s).nonzero().flatten(), (rb == s).nonzero().flatten()
        if len(ia) and len(ib):
            pooled[s] = (fa[ia].mean(0), fb[ib].mean(0))
    total = 0.0
    for k_s, q_s in pooled.values():
        logits = torch.stack([k_s @ q / t for _, q in pooled.values()])
        total = total - (k_s @ q_s / t - torch.logsumexp(logits, 0))
    return total / len(pooled)


def test_region_contrastive_matches_naive():
    g = torch.Generator().manual_seed(2)
    num_regions = 6
    fa, fb = torch.randn(40, 5, generator=g, dtype=torch.float64), torch.randn(60, 5, generator=g, dtype=torch.float64)
    ra = torch.randint(-1, num_regions, (40,), generator=g)
    rb = torch.randint(-1, num_regions - 1, (60,), generator=g)  # the last region has no pixels: left out
    assert_same(
        lambda x, y: region_contrastive(x, ra, y, rb, num_regions, 0.1),
        lambda x, y: naive_region(x, ra, y, rb, num_regions, 0.1),
        [fa, fb],
    )
    pooled, counts = region_pool(fa, ra, num_regions)
    for s in range(num_regions):
        assert counts[s] == (ra == s).sum()
        if counts[s]:
            torch.testing.assert_close(pooled[s], fa[ra == s].mean(0))
    # region weights do not depend on how many points a region has: duplicating points changes nothing
    dup = region_contrastive(torch.cat([fa, fa]), torch.cat([ra, ra]), fb, rb, num_regions, 0.1)
    torch.testing.assert_close(dup, region_contrastive(fa, ra, fb, rb, num_regions, 0.1))


def taco_reference(z_a, z_pos, w):
    """TACO's ``compute_logits`` (agents/taco.py) and cross entropy with the diagonal as labels."""
    wz = torch.matmul(w, z_pos.T)
    logits = torch.matmul(z_a, wz)
    logits = logits - torch.max(logits, 1)[0][:, None]
    return F.cross_entropy(logits, torch.arange(logits.shape[0]))


def test_taco_matches_the_authors_code():
    g = torch.Generator().manual_seed(3)
    context, future = (
        torch.randn(9, 4, generator=g, dtype=torch.float64),
        torch.randn(9, 4, generator=g, dtype=torch.float64),
    )
    w = torch.rand(4, 4, generator=g, dtype=torch.float64)
    assert_same(lambda c, f, m: taco(c, f, m), taco_reference, [context, future, w])
    assert_same(
        lambda c, f: taco(c, f), lambda c, f: taco_reference(c, f, torch.eye(4, dtype=torch.float64)), [context, future]
    )
    head = TACOLoss(state_dim=4, action_dim=2, horizon=3, hidden_dim=8).double()
    state, actions = torch.randn(9, 4, dtype=torch.float64), torch.randn(9, 3, 2, dtype=torch.float64)
    expected = taco_reference(head.project_state_action(torch.cat([state, actions.flatten(1)], 1)), future, head.weight)
    torch.testing.assert_close(head(state, actions, future), expected)
    with pytest.raises(ValueError, match="actions"):
        head(state, actions[:, :2], future)


@pytest.mark.parametrize("squared", [False, True])
def test_triplet_matches_naive_and_torch(squared):
    g = torch.Generator().manual_seed(4)
    a, p, n = (torch.randn(10, 3, generator=g, dtype=torch.float64) for _ in range(3))

    def naive(a, p, n):
        total = 0.0
        for i in range(len(a)):
            dp, dn = (a[i] - p[i] + 1e-6).norm(), (a[i] - n[i] + 1e-6).norm()
            if squared:
                dp, dn = dp**2, dn**2
            total = total + torch.clamp(dp - dn + 0.5, min=0)
        return total / len(a)

    assert_same(lambda *x: triplet(*x, margin=0.5, squared=squared), naive, [a, p, n])
    if not squared:
        torch.testing.assert_close(TripletLoss(margin=0.5)(a, p, n), F.triplet_margin_loss(a, p, n, margin=0.5))


def test_gradcheck():
    g = torch.Generator().manual_seed(5)
    z = torch.randn(5, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 0, 1, 1])
    assert torch.autograd.gradcheck(lambda x: supcon(x, labels, 0.5), (z,))
    v = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(3, 2, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, y: mil_nce(x, y, 0.5), (v, t))
    assert torch.autograd.gradcheck(lambda x, y: clip_loss(x, y[:, 0], 0.5), (v, t))


def test_errors():
    with pytest.raises(ValueError, match="labels"):
        supcon(torch.randn(4, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="text"):
        mil_nce(torch.randn(4, 3), torch.randn(4, 3))
    with pytest.raises(ValueError, match="out of range"):
        region_pool(torch.randn(3, 2), torch.tensor([0, 1, 5]), 3)
    with pytest.raises(ValueError, match="margin"):
        triplet(torch.randn(2, 3), torch.randn(2, 3), torch.randn(2, 3), margin=-1.0)
    assert math.isfinite(supcon(torch.randn(4, 3), torch.arange(4)).item())  # no positives: loss 0, not nan

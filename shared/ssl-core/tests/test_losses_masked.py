"""Masked-modeling losses against element-wise references of MAE, SimMIM, BERT/DropPos and GraphMAE."""

import pytest
import torch
import torch.nn.functional as F

from ssl_core.losses import (
    MaskedCrossEntropyLoss,
    MaskedL1Loss,
    MaskedMSELoss,
    masked_cross_entropy,
    masked_l1,
    masked_mse,
    sce,
)


def naive_masked(pred, target, mask, norm_pix, power):
    """MAE's forward_loss patch by patch: mean over masked patches of the mean over a patch's values."""
    pred, target = pred.double(), target.double()
    total, count = 0.0, 0
    for b in range(pred.shape[0]):
        for pos in range(pred.shape[1]):
            if not mask[b, pos]:
                continue
            t = target[b, pos]
            if norm_pix:
                p = t.numel()
                mean = t.sum() / p
                var = ((t - mean) ** 2).sum() / (p - 1)
                t = (t - mean) / torch.sqrt(var + 1e-6)
            total = total + (pred[b, pos] - t).abs().pow(power).mean()
            count += 1
    return total / count


@pytest.mark.parametrize("shape", [(2, 5, 3), (3, 7, 12)])
@pytest.mark.parametrize("norm_pix", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_masked_mse_and_l1_match_naive(shape, norm_pix, dtype):
    g = torch.Generator().manual_seed(sum(shape))
    pred = torch.randn(*shape, generator=g, dtype=dtype, requires_grad=True)
    target = torch.randn(*shape, generator=g, dtype=dtype)
    mask = torch.rand(shape[:2], generator=g) < 0.6
    mask[0, 0] = True
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    for fn, power in ((masked_mse, 2), (masked_l1, 1)):
        ours = fn(pred, target, mask, norm_pix=norm_pix)
        ref = naive_masked(pred, target, mask, norm_pix, power)
        torch.testing.assert_close(ours.double(), ref, **tol)
        torch.testing.assert_close(
            torch.autograd.grad(ours, pred)[0].double(), torch.autograd.grad(ref, pred)[0].double(), **tol
        )
    # a float 0/1 mask (MAE's) gives the same as a bool one
    torch.testing.assert_close(
        masked_mse(pred, target, mask.float(), norm_pix), masked_mse(pred, target, mask, norm_pix)
    )


@pytest.mark.parametrize("norm_pix", [False, True])
def test_module_forms_equal_the_functions(norm_pix):
    g = torch.Generator().manual_seed(3)
    pred, target = torch.randn(2, 5, 6, generator=g), torch.randn(2, 5, 6, generator=g)
    mask = torch.rand(2, 5, generator=g) > 0.5
    assert torch.equal(MaskedMSELoss(norm_pix)(pred, target, mask), masked_mse(pred, target, mask, norm_pix))
    assert torch.equal(MaskedL1Loss(norm_pix)(pred, target, mask), masked_l1(pred, target, mask, norm_pix))
    assert not torch.equal(MaskedMSELoss(norm_pix)(pred, target, mask), MaskedL1Loss(norm_pix)(pred, target, mask))


def test_masked_losses_ignore_visible_patches_and_handle_empty_masks():
    pred, target = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 0, 0, 1], [0, 0, 1, 0]], dtype=torch.bool)
    changed = target.clone()
    changed[~mask] += 100.0  # visible patches never enter the loss
    torch.testing.assert_close(masked_mse(pred, target, mask), masked_mse(pred, changed, mask))
    assert masked_mse(pred, target, torch.zeros(2, 4, dtype=torch.bool)).item() == 0.0


def naive_cross_entropy(logits, targets, mask, eps):
    """-sum_c q_c log softmax(z)_c with q = (1 - eps) y + eps / C, averaged over the selected positions."""
    logits = logits.double()
    c = logits.shape[-1]
    total, count = 0.0, 0
    for b in range(logits.shape[0]):
        for pos in range(logits.shape[1]):
            if not mask[b, pos]:
                continue
            y = targets[b, pos].double() if targets.is_floating_point() else F.one_hot(targets[b, pos], c).double()
            q = (1 - eps) * y + eps / c
            total = total - (q * torch.log_softmax(logits[b, pos], dim=-1)).sum()
            count += 1
    return total / count


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("soft", [False, True])
def test_masked_cross_entropy_matches_naive(eps, soft):
    g = torch.Generator().manual_seed(int(soft) + 10 * int(eps * 10))
    logits = torch.randn(3, 6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    if soft:  # e.g. DropPos's smoothed position targets
        targets = torch.softmax(torch.randn(3, 6, 5, generator=g, dtype=torch.float64), dim=-1)
    else:
        targets = torch.randint(0, 5, (3, 6), generator=g)
    mask = torch.rand(3, 6, generator=g) < 0.5
    mask[0, 0] = True
    ours = masked_cross_entropy(logits, targets, mask, label_smoothing=eps)
    ref = naive_cross_entropy(logits, targets, mask, eps)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(torch.autograd.grad(ours, logits)[0], torch.autograd.grad(ref, logits)[0])


def test_masked_cross_entropy_uses_ignore_index_without_mask():
    logits = torch.randn(2, 4, 7)
    labels = torch.tensor([[3, -100, -100, 1], [-100, 6, -100, -100]])
    expected = masked_cross_entropy(logits, labels.clamp(min=0), labels != -100)
    torch.testing.assert_close(MaskedCrossEntropyLoss()(logits, labels), expected)
    no_labels = torch.full((2, 4), -100)
    x = logits.clone().requires_grad_(True)
    out = masked_cross_entropy(x, no_labels)
    out.backward()  # still differentiable, with zero gradient
    assert out.item() == 0.0 and x.grad.abs().sum() == 0


def naive_sce(x, z, alpha, mask):
    """GraphMAE eq. 3: mean over masked nodes of (1 - cos(x_i, z_i)) ** alpha."""
    x, z = x.double(), z.double()
    terms = [(1 - x[i] @ z[i] / (x[i].norm() * z[i].norm())) ** alpha for i in range(len(x)) if mask[i]]
    return sum(terms) / len(terms)


@pytest.mark.parametrize("alpha", [1.0, 2.0, 3.0])
def test_sce_matches_naive(alpha):
    g = torch.Generator().manual_seed(int(alpha))
    x = torch.randn(9, 6, generator=g, dtype=torch.float64, requires_grad=True)
    z = torch.randn(9, 6, generator=g, dtype=torch.float64)
    mask = torch.rand(9, generator=g) < 0.5
    mask[0] = True
    ours, ref = sce(x, z, alpha, mask), naive_sce(x, z, alpha, mask)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(torch.autograd.grad(ours, x)[0], torch.autograd.grad(ref, x)[0])
    torch.testing.assert_close(sce(x, z, alpha), naive_sce(x, z, alpha, torch.ones(9, dtype=torch.bool)))
    assert sce(z, 2 * z, alpha).item() == pytest.approx(0.0, abs=1e-12)  # scale invariant, 0 when aligned


def test_gradcheck():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(2, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    mask = torch.tensor([[True, False, True], [False, True, True]])
    assert torch.autograd.gradcheck(lambda p: masked_mse(p, target, mask, norm_pix=True), (pred,))
    assert torch.autograd.gradcheck(lambda p: masked_cross_entropy(p, target.argmax(-1), mask, 0.1), (pred,))
    assert torch.autograd.gradcheck(lambda p: sce(p[0], target[0], 2.0), (pred,))


def test_errors():
    with pytest.raises(ValueError, match="mask"):
        masked_mse(torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.ones(2, 4))
    with pytest.raises(ValueError, match="label_smoothing"):
        masked_cross_entropy(torch.randn(2, 3, 4), torch.zeros(2, 3, dtype=torch.long), label_smoothing=1.0)
    with pytest.raises(ValueError, match="needs a mask"):
        masked_cross_entropy(torch.randn(2, 3, 4), torch.rand(2, 3, 4))

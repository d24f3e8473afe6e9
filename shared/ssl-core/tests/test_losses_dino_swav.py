"""DINO, iBOT patch loss, Sinkhorn-Knopp and SwAV against references of the papers and against lightly."""

import pytest
import torch

from ssl_core.losses import DINOLoss, IBOTPatchLoss, SwAVLoss, dino_loss, ibot_patch_loss, sinkhorn_knopp, swav_loss
from ssl_core.teacher import teacher_temperature_schedule


def naive_dino(student, teacher, center, t_temp, s_temp):
    """DINO Algorithm 1: H(P_t, P_s) = -sum_k P_t log P_s, averaged over samples and over pairs s != t."""
    total, terms = 0.0, 0
    for t in range(len(teacher)):
        p_t = torch.softmax((teacher[t].double() - center.double()) / t_temp, dim=-1).detach()
        for s in range(len(student)):
            if s == t:
                continue
            log_p_s = torch.log_softmax(student[s].double() / s_temp, dim=-1)
            total = total + sum(-(p_t[n] * log_p_s[n]).sum() for n in range(len(p_t))) / len(p_t)
            terms += 1
    return total / terms


def naive_ibot(student, teacher, mask, center, t_temp, s_temp):
    """iBOT eq. 2: per image, the mean over masked patches of H(P_t, P_s); then the mean over images."""
    total = 0.0
    for b in range(len(student)):
        p_t = torch.softmax((teacher[b].double() - center.double()) / t_temp, dim=-1).detach()
        log_p_s = torch.log_softmax(student[b].double() / s_temp, dim=-1)
        ce = [-(p_t[j] * log_p_s[j]).sum() for j in range(len(p_t)) if mask[b, j]]
        total = total + (sum(ce) / len(ce) if ce else 0.0)
    return total / len(student)


@pytest.mark.parametrize("v_s,v_t,n,k", [(2, 2, 3, 5), (6, 2, 7, 11), (4, 1, 2, 17)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dino_matches_naive(v_s, v_t, n, k, dtype):
    g = torch.Generator().manual_seed(v_s * 100 + n)
    student = torch.randn(v_s, n, k, generator=g, dtype=dtype, requires_grad=True)
    teacher = torch.randn(v_t, n, k, generator=g, dtype=dtype)
    center = torch.randn(1, k, generator=g, dtype=dtype)
    ours = dino_loss(student, teacher, center, 0.04, 0.1)
    (grad,) = torch.autograd.grad(ours, student)
    s2 = student.detach().double().requires_grad_(True)
    ref = naive_dino(s2, teacher, center, 0.04, 0.1)
    (ref_grad,) = torch.autograd.grad(ref, s2)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ours.double(), ref, **tol)
    torch.testing.assert_close(grad.double(), ref_grad, **tol)


@pytest.mark.parametrize("b,length,k", [(2, 4, 3), (5, 9, 7)])
def test_ibot_patch_loss_matches_naive(b, length, k):
    g = torch.Generator().manual_seed(b + length)
    student = torch.randn(b, length, k, generator=g, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(b, length, k, generator=g, dtype=torch.float64)
    mask = torch.rand(b, length, generator=g) < 0.5
    mask[0] = False  # an image without masked patches contributes 0
    mask[1, 0] = True
    center = torch.randn(k, generator=g, dtype=torch.float64)
    ours = ibot_patch_loss(student, teacher, mask, center, 0.07, 0.1)
    ref = naive_ibot(student, teacher, mask, center, 0.07, 0.1)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(torch.autograd.grad(ours, student)[0], torch.autograd.grad(ref, student)[0])


def test_gradcheck_and_teacher_gets_no_gradient():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(3, 2, 4, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(2, 2, 4, generator=g, dtype=torch.float64, requires_grad=True)
    c = torch.zeros(1, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: dino_loss(x, t, c, 0.5, 0.3), (s,))
    dino_loss(s, t, c).backward()
    assert t.grad is None  # the teacher is a target: stop-gradient
    # (SwAV's codes are constants for the gradient, so it has no finite-difference check: see naive_swav)


def test_dino_module_centers_and_uses_schedule():
    loss_fn = DINOLoss(out_dim=4, center_momentum=0.9)
    teacher = torch.randn(2, 5, 4)
    student = torch.randn(3, 5, 4)
    first = loss_fn(student, teacher, teacher_temp=0.07)
    torch.testing.assert_close(first, dino_loss(student, teacher, torch.zeros(1, 4), 0.07, 0.1))
    torch.testing.assert_close(loss_fn.center.center, 0.1 * teacher.mean(dim=(0, 1))[None])
    second = loss_fn(student, teacher, teacher_temp=0.07)  # now with the updated centre
    torch.testing.assert_close(second, dino_loss(student, teacher, 0.1 * teacher.mean(dim=(0, 1))[None], 0.07, 0.1))
    sched = teacher_temperature_schedule(0.04, 0.07, total_steps=10, warmup_steps=4)
    assert sched.tolist() == pytest.approx([0.04, 0.05, 0.06, 0.07] + [0.07] * 6)


def test_dino_and_ibot_match_lightly():
    lightly_loss = pytest.importorskip("lightly.loss")
    g = torch.Generator().manual_seed(3)
    k = 16
    ours, peer = DINOLoss(k, center_momentum=0.9), lightly_loss.DINOLoss(output_dim=k, center_momentum=0.9)
    for _ in range(3):  # several steps, so the centres must evolve alike
        student = [torch.randn(8, k, generator=g, requires_grad=True) for _ in range(4)]
        teacher = [torch.randn(8, k, generator=g) for _ in range(2)]
        a = ours(student, teacher, teacher_temp=0.05)
        b = peer(teacher, student, teacher_temp=0.05)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        for g1, g2 in zip(torch.autograd.grad(a, student), torch.autograd.grad(b, student), strict=True):
            torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-6)
    # iBOT: lightly takes the masked tokens only; the first step (zero centre) agrees
    student = torch.randn(4, 9, k, generator=g, requires_grad=True)
    teacher = torch.randn(4, 9, k, generator=g)
    mask = torch.rand(4, 9, generator=g) < 0.4
    mask[:, 0] = True
    a = IBOTPatchLoss(k)(student, teacher, mask, teacher_temp=0.06)
    b = lightly_loss.IBOTPatchLoss(output_dim=k)(teacher[mask], student[mask], mask.view(4, 3, 3), teacher_temp=0.06)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        torch.autograd.grad(a, student)[0], torch.autograd.grad(b, student)[0], rtol=1e-5, atol=1e-6
    )


def test_sinkhorn_solves_the_entropic_transport_problem():
    g = torch.Generator().manual_seed(1)
    scores = torch.randn(12, 4, generator=g, dtype=torch.float64)
    q = sinkhorn_knopp(scores, epsilon=0.5, n_iters=500)
    # the constraints of SwAV's polytope (scaled by B): each sample sums to 1, each prototype to B / K
    torch.testing.assert_close(q.sum(dim=1), torch.ones(12, dtype=torch.float64))
    torch.testing.assert_close(q.sum(dim=0), torch.full((4,), 3.0, dtype=torch.float64))
    # optimality: Q = diag(u) exp(scores / eps) diag(v), i.e. log Q - scores / eps is a sum a_b + c_k
    r = torch.log(q) - scores / 0.5
    interaction = r - r[:, :1] - r[:1, :] + r[0, 0]
    torch.testing.assert_close(interaction, torch.zeros_like(interaction), atol=1e-9, rtol=0)


def test_sinkhorn_is_shift_invariant_and_stable():
    scores = torch.rand(6, 3) * 2 - 1  # cosine scores, as SwAV's
    # exp((s + 50) / 0.05) overflows float32 without the max shift inside sinkhorn_knopp
    shifted = sinkhorn_knopp(scores + 50.0)
    assert torch.isfinite(shifted).all()
    torch.testing.assert_close(shifted, sinkhorn_knopp(scores))


def naive_swav(high, low, queue, temperature):
    """SwAV eq. 1-2 over multi-crop, with codes from sinkhorn_knopp (tested above)."""
    views = high + low
    total = 0.0
    for i, scores in enumerate(high):
        all_scores = scores if queue is None else torch.cat([scores, queue[i]])
        q = sinkhorn_knopp(all_scores.detach())[: len(scores)]
        sub = 0.0
        for j, v in enumerate(views):
            if j != i:
                log_p = torch.log_softmax(v / temperature, dim=1)
                sub = sub + sum(-(q[b] * log_p[b]).sum() for b in range(len(v))) / len(v)
        total = total + sub / (len(views) - 1)
    return total / len(high)


@pytest.mark.parametrize("with_queue", [False, True])
def test_swav_matches_naive_and_lightly(with_queue):
    lightly_loss = pytest.importorskip("lightly.loss")
    g = torch.Generator().manual_seed(4)
    high = [torch.randn(8, 5, generator=g, requires_grad=True) for _ in range(2)]
    low = [torch.randn(8, 5, generator=g, requires_grad=True) for _ in range(3)]
    queue = [torch.randn(16, 5, generator=g) for _ in range(2)] if with_queue else None
    ours = SwAVLoss()(high, low, queue)
    inputs = high + low
    grads = torch.autograd.grad(ours, inputs)
    ref = naive_swav(high, low, queue, 0.1)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    for g1, g2 in zip(grads, torch.autograd.grad(ref, inputs), strict=True):
        torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-6)
    peer = lightly_loss.SwaVLoss()(high, low, queue)
    torch.testing.assert_close(ours, peer.reshape(()), rtol=1e-5, atol=1e-6)
    for g1, g2 in zip(grads, torch.autograd.grad(peer.sum(), inputs), strict=True):
        torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-6)


def test_errors():
    with pytest.raises(ValueError, match="two views"):
        dino_loss(torch.randn(1, 2, 3), torch.randn(1, 2, 3), torch.zeros(3))
    with pytest.raises(ValueError, match="V_t <= V_s"):
        dino_loss(torch.randn(1, 2, 3), torch.randn(2, 2, 3), torch.zeros(3))
    with pytest.raises(ValueError, match="mask"):
        ibot_patch_loss(torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.ones(2, 4), torch.zeros(4))
    with pytest.raises(ValueError, match="two crops"):
        swav_loss([torch.randn(4, 3)])
    with pytest.raises(ValueError, match="temperature"):
        teacher_temperature_schedule(0.0, 0.07, 10, 2)

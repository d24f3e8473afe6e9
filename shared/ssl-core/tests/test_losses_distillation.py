"""Soft-target distillation (Hinton et al.) and SLA's aggregation and self-distillation against
element-wise references of the papers."""

import pytest
import torch

from ssl_core.losses import (
    SLASelfDistillationLoss,
    SoftTargetDistillationLoss,
    sla_aggregate,
    sla_joint_labels,
    sla_self_distillation,
    soft_target_distillation,
)


def naive_kd(s, t, temp):
    """T^2 * mean_i sum_c p_c (log p_c - log q_c), p = softmax(t / T), q = softmax(s / T)."""
    total = 0.0
    for i in range(len(s)):
        p = torch.softmax(t[i].detach() / temp, 0)
        q = torch.softmax(s[i] / temp, 0)
        total = total + (p * (torch.log(p) - torch.log(q))).sum()
    return temp**2 * total / len(s)


@pytest.mark.parametrize("temp", [1.0, 4.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_soft_target_distillation_matches_naive(temp, dtype):
    g = torch.Generator().manual_seed(int(temp))
    s = torch.randn(6, 5, generator=g, dtype=dtype, requires_grad=True)
    t = torch.randn(6, 5, generator=g, dtype=dtype, requires_grad=True)
    ours = SoftTargetDistillationLoss(temp)(s, t)
    (grad,) = torch.autograd.grad(ours, s)
    s2 = s.detach().double().requires_grad_(True)
    ref = naive_kd(s2, t.detach().double(), temp)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ours.double(), ref, **tol)
    torch.testing.assert_close(grad.double(), torch.autograd.grad(ref, s2)[0], **tol)
    soft_target_distillation(s, t, temp).backward()
    assert t.grad is None  # the teacher is a target
    assert soft_target_distillation(t, t, temp).abs().item() < 1e-6  # zero when the student agrees


def test_sla_aggregate_and_joint_labels():
    b, m, c = 3, 4, 5
    g = torch.Generator().manual_seed(0)
    joint = torch.randn(b, m, c * m, generator=g)
    labels = torch.tensor([0, 4, 2])
    joint_labels = sla_joint_labels(labels, m)
    assert joint_labels.tolist()[1] == [16, 17, 18, 19]  # y * M + j
    agg = sla_aggregate(joint)
    for i in range(b):
        for cls in range(c):
            # eq. 6: the mean over transformations j of z_{(cls, j)}(t_j(x))
            expected = sum(joint[i, j, cls * m + j] for j in range(m)) / m
            torch.testing.assert_close(agg[i, cls], expected)
    # a model that scores the joint label (y, j) highest under t_j predicts y after aggregation
    perfect = torch.zeros(b, m, c * m)
    perfect[torch.arange(b)[:, None], torch.arange(m)[None, :], joint_labels] = 5.0
    assert sla_aggregate(perfect).argmax(1).tolist() == labels.tolist()


def test_sla_self_distillation_is_kd_to_the_aggregate():
    g = torch.Generator().manual_seed(1)
    student = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    joint = torch.randn(3, 4, 20, generator=g, dtype=torch.float64, requires_grad=True)
    ours = SLASelfDistillationLoss()(student, joint)
    torch.testing.assert_close(ours, naive_kd(student, sla_aggregate(joint), 1.0))
    ours.backward()
    assert joint.grad is None or joint.grad.abs().sum() == 0  # the aggregate is a target


def test_gradcheck_and_errors():
    g = torch.Generator().manual_seed(2)
    s = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(4, 3, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: soft_target_distillation(x, t, 2.0), (s,))
    with pytest.raises(ValueError, match="one shape"):
        soft_target_distillation(torch.randn(2, 3), torch.randn(2, 4))
    with pytest.raises(ValueError, match="C \\* M"):
        sla_aggregate(torch.randn(2, 3, 7))
    with pytest.raises(ValueError, match="temperature"):
        sla_self_distillation(torch.randn(2, 3), torch.randn(2, 2, 6), temperature=0.0)

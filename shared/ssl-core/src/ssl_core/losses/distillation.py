"""Distillation to soft targets: Hinton's temperature-softened KD and SLA's self-distillation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.losses._common import check_positive


def soft_target_distillation(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 4.0
) -> torch.Tensor:
    r"""Knowledge distillation to temperature-softened teacher probabilities (Hinton et al., 2015, Sec. 2).

    .. math::
        L = \frac{T^2}{N} \sum_i \mathrm{KL}\big(\mathrm{softmax}(t_i/T)\ \Vert\ \mathrm{softmax}(s_i/T)\big)

    The :math:`T^2` keeps the gradient scale independent of :math:`T`. The teacher is a target: no
    gradient flows into ``teacher_logits``.

    Args:
        student_logits: student scores.
        teacher_logits: teacher scores.
        temperature: :math:`T`.

    Shapes:
        - student_logits, teacher_logits: ``(N, C)``
        - output: scalar
    """
    check_positive(temperature, "temperature")
    if student_logits.shape != teacher_logits.shape or student_logits.ndim != 2:
        raise ValueError(
            f"soft_target_distillation expects (N, C) student and teacher logits of one shape, "
            f"got {tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}"
        )
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits.detach() / temperature, dim=1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return temperature**2 * kl


def sla_joint_labels(labels: torch.Tensor, n_transforms: int) -> torch.Tensor:
    """Joint (class, transformation) labels of SLA (Lee et al., 2020, Sec. 2.2): ``y * M + j``.

    Args:
        labels: original class of each sample.
        n_transforms: number ``M`` of input transformations (e.g. 4 rotations).

    Shapes:
        - labels: ``(B,)``
        - output: ``(B, M)``, column ``j`` the label of the sample transformed by ``t_j``
    """
    return labels[:, None] * n_transforms + torch.arange(n_transforms, device=labels.device)


def sla_aggregate(joint_logits: torch.Tensor) -> torch.Tensor:
    r"""SLA's aggregated inference (Lee et al., 2020, eq. 6): class scores averaged over transformations.

    .. math:: s_i = \frac1M \sum_{j=1}^{M} z_{(i, j)}\big(t_j(x)\big)

    where :math:`z(t_j(x))` are the joint logits of the input transformed by :math:`t_j`, indexed as
    :func:`sla_joint_labels` (``i * M + j``); :math:`\mathrm{softmax}(s)` is :math:`P_{aggregated}`.

    Args:
        joint_logits: joint logits of each sample under each of the ``M`` transformations.

    Shapes:
        - joint_logits: ``(B, M, C * M)``
        - output: ``(B, C)``
    """
    if joint_logits.ndim != 3 or joint_logits.shape[2] % joint_logits.shape[1]:
        raise ValueError(f"sla_aggregate expects joint logits (B, M, C * M), got {tuple(joint_logits.shape)}")
    b, m, cm = joint_logits.shape
    per_class = joint_logits.view(b, m, cm // m, m)  # [b, j, i, j'] = z_{(i, j')}(t_j(x))
    own = torch.diagonal(per_class, dim1=1, dim2=3)  # (B, C, M): j' == j
    return own.mean(dim=2)


def sla_self_distillation(
    student_logits: torch.Tensor, joint_logits: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    r"""SLA's self-distillation (Lee et al., 2020, eq. 7): a single-pass classifier mimics the aggregated one.

    .. math:: L_{SD} = \mathrm{KL}\big(P_{aggregated}(\cdot|x)\ \Vert\ \sigma(u(x))\big)

    where :math:`P_{aggregated}` comes from :func:`sla_aggregate` (a target, without gradient) and
    :math:`u(x)` are the student head's logits on the untransformed input; this is
    :func:`soft_target_distillation` with the aggregated scores as teacher (temperature 1 in the paper).

    Args:
        student_logits: logits of the extra single-view head, ``(B, C)``.
        joint_logits: joint logits under every transformation, ``(B, M, C * M)``.
        temperature: softening temperature.

    Shapes:
        - output: scalar
    """
    return soft_target_distillation(student_logits, sla_aggregate(joint_logits).detach(), temperature)


class SoftTargetDistillationLoss(nn.Module):
    """Module form of :func:`soft_target_distillation`.

    Args:
        temperature: softening temperature.
    """

    def __init__(self, temperature: float = 4.0) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        return soft_target_distillation(student_logits, teacher_logits, self.temperature)


class SLASelfDistillationLoss(nn.Module):
    """Module form of :func:`sla_self_distillation`.

    Args:
        temperature: softening temperature.
    """

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, student_logits: torch.Tensor, joint_logits: torch.Tensor) -> torch.Tensor:
        return sla_self_distillation(student_logits, joint_logits, self.temperature)

"""DINO's self-distillation loss and iBOT's masked-patch distillation loss, both with a centred teacher."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.losses._common import check_positive
from ssl_core.teacher.centering import Center


def _stack_views(views: torch.Tensor | Sequence[torch.Tensor], name: str) -> torch.Tensor:
    out = views if isinstance(views, torch.Tensor) else torch.stack(list(views))
    if out.ndim != 3:
        raise ValueError(f"{name} must be (V, N, K) or a list of V (N, K) tensors, got shape {tuple(out.shape)}")
    return out


def dino_loss(
    student_out: torch.Tensor | Sequence[torch.Tensor],
    teacher_out: torch.Tensor | Sequence[torch.Tensor],
    center: torch.Tensor,
    teacher_temp: float = 0.04,
    student_temp: float = 0.1,
) -> torch.Tensor:
    r"""DINO cross-entropy between sharpened, centred teacher outputs and student outputs (Caron et al., 2021).

    For teacher views :math:`t` (the global crops) and student views :math:`s` (global then local crops),
    with :math:`P_t = \mathrm{softmax}((g_t - c)/\tau_t)` (no gradient) and
    :math:`P_s = \mathrm{softmax}(g_s/\tau_s)` (eq. 1-3, Algorithm 1):

    .. math:: L = \frac{1}{|\{(t,s): s \ne t\}|}\sum_{t}\sum_{s \ne t} \frac1N \sum_n -P_t^{(n)}\cdot\log P_s^{(n)}

    Student view ``v`` and teacher view ``v`` are the same crop, so their pair is skipped. Each sample's
    term is independent of the others, so nothing is gathered; the centre is kept by
    :class:`ssl_core.teacher.Center` across ranks (see :class:`DINOLoss`).

    Args:
        student_out: student head outputs (logits) of the ``V_s`` views.
        teacher_out: teacher head outputs of the first ``V_t <= V_s`` views.
        center: the centre :math:`c` subtracted from the teacher outputs.
        teacher_temp: :math:`\tau_t` (0.04, warmed up to 0.07 by
            :func:`ssl_core.teacher.teacher_temperature_schedule`).
        student_temp: :math:`\tau_s` (0.1).

    Shapes:
        - student_out: ``(V_s, N, K)`` or ``V_s`` tensors ``(N, K)``
        - teacher_out: ``(V_t, N, K)`` or ``V_t`` tensors ``(N, K)``
        - center: ``(1, K)`` or ``(K,)``
        - output: scalar
    """
    check_positive(teacher_temp, "teacher_temp")
    check_positive(student_temp, "student_temp")
    s = _stack_views(student_out, "student_out")
    t = _stack_views(teacher_out, "teacher_out")
    if t.shape[1:] != s.shape[1:] or t.shape[0] > s.shape[0]:
        raise ValueError(
            f"dino_loss expects teacher views (V_t, N, K) with V_t <= V_s matching student views (V_s, N, K), "
            f"got {tuple(t.shape)} and {tuple(s.shape)}"
        )
    if t.shape[0] * s.shape[0] - t.shape[0] == 0:
        raise ValueError("dino_loss needs at least two views: a view is never compared with itself")
    teacher_probs = F.softmax((t.detach() - center.reshape(1, 1, -1)) / teacher_temp, dim=-1)  # (V_t, N, K)
    student_logp = F.log_softmax(s / student_temp, dim=-1)  # (V_s, N, K)
    ce = -torch.einsum("tnk,snk->ts", teacher_probs, student_logp) / s.shape[1]  # (V_t, V_s) mean over n
    same_view = torch.eye(t.shape[0], s.shape[0], dtype=torch.bool, device=ce.device)
    return ce.masked_fill(same_view, 0.0).sum() / (~same_view).sum()


def ibot_patch_loss(
    student_patches: torch.Tensor,
    teacher_patches: torch.Tensor,
    mask: torch.Tensor,
    center: torch.Tensor,
    teacher_temp: float = 0.04,
    student_temp: float = 0.1,
) -> torch.Tensor:
    r"""iBOT masked-image-modeling loss by self-distillation of patch tokens (Zhou et al., 2022, eq. 2).

    The student sees the masked image, the teacher the full one; on masked patches the student's patch
    distribution matches the teacher's sharpened, centred one:

    .. math::
        L = \frac1B\sum_b \frac{\sum_l m_{bl}\, \big(-P_t^{(bl)}\cdot \log P_s^{(bl)}\big)}{\max(1, \sum_l m_{bl})}

    (a mean over the masked patches of each image, then over images, as iBOT's and DINOv2's code).

    Args:
        student_patches: student patch-head outputs of one view.
        teacher_patches: teacher patch-head outputs of the same view.
        mask: True (or 1) where the student's patch was masked.
        center: the patch centre (iBOT keeps one apart from the [CLS] centre).
        teacher_temp: :math:`\tau_t` (iBOT: 0.04 warmed up to 0.07).
        student_temp: :math:`\tau_s` (0.1).

    Shapes:
        - student_patches, teacher_patches: ``(B, L, K)``
        - mask: ``(B, L)``
        - center: ``(1, K)`` or ``(K,)``
        - output: scalar
    """
    check_positive(teacher_temp, "teacher_temp")
    check_positive(student_temp, "student_temp")
    if student_patches.ndim != 3 or student_patches.shape != teacher_patches.shape:
        raise ValueError(
            f"ibot_patch_loss expects student and teacher patches of one (B, L, K) shape, got "
            f"{tuple(student_patches.shape)} and {tuple(teacher_patches.shape)}"
        )
    if mask.shape != student_patches.shape[:2]:
        raise ValueError(f"mask must be (B, L) = {tuple(student_patches.shape[:2])}, got {tuple(mask.shape)}")
    teacher_probs = F.softmax((teacher_patches.detach() - center.reshape(1, 1, -1)) / teacher_temp, dim=-1)
    ce = -(teacher_probs * F.log_softmax(student_patches / student_temp, dim=-1)).sum(dim=-1)  # (B, L)
    m = mask.to(ce.dtype)
    return ((ce * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)).mean()


class _CenteredTeacherLoss(nn.Module):
    """The state of a loss against a centred teacher (DINO, iBOT): default temperatures and the teacher centre,
    an EMA of the teacher outputs averaged over all ranks (:class:`ssl_core.teacher.Center`), checkpointed with
    the method. Subclasses compute the loss with :attr:`center` and then update it.

    Args:
        out_dim: size ``K`` of the head output.
        teacher_temp: default :math:`\\tau_t`, used when ``forward`` gets none.
        student_temp: :math:`\\tau_s`.
        center_momentum: EMA momentum of the centre.
    """

    def __init__(
        self, out_dim: int, teacher_temp: float = 0.04, student_temp: float = 0.1, center_momentum: float = 0.9
    ) -> None:
        super().__init__()
        self.teacher_temp, self.student_temp = teacher_temp, student_temp
        self.center = Center(out_dim, center_momentum)

    def _teacher_temp(self, teacher_temp: float | None) -> float:
        """This call's :math:`\\tau_t`: the step's (from the schedule) when given, else the default."""
        return self.teacher_temp if teacher_temp is None else teacher_temp


class DINOLoss(_CenteredTeacherLoss):
    """:func:`dino_loss` with the centre kept as state, updated after each call (DINO, Algorithm 1).

    The centre is an EMA of the teacher outputs averaged over all ranks (:class:`ssl_core.teacher.Center`),
    so it is the same on every rank and is checkpointed with the method.

    Args:
        out_dim: size ``K`` of the head output (DINO: 65536).
        teacher_temp: default :math:`\\tau_t`, used when ``forward`` gets none.
        student_temp: :math:`\\tau_s`.
        center_momentum: EMA momentum of the centre (0.9).
    """

    def forward(
        self,
        student_out: torch.Tensor | Sequence[torch.Tensor],
        teacher_out: torch.Tensor | Sequence[torch.Tensor],
        teacher_temp: float | None = None,
    ) -> torch.Tensor:
        """Loss with the current centre, then the centre update from ``teacher_out``.

        Args:
            student_out: ``(V_s, N, K)`` student logits.
            teacher_out: ``(V_t, N, K)`` teacher logits.
            teacher_temp: this step's teacher temperature (from the schedule); the default otherwise.
        """
        temp = self._teacher_temp(teacher_temp)
        loss = dino_loss(student_out, teacher_out, self.center.center, temp, self.student_temp)
        self.center.update(_stack_views(teacher_out, "teacher_out"))
        return loss


class IBOTPatchLoss(_CenteredTeacherLoss):
    """:func:`ibot_patch_loss` with its own patch centre, updated from all teacher patch tokens after each call.

    As iBOT's ``update_center``, the centre is the EMA of the mean over every patch token of the teacher
    (lightly's ``IBOTPatchLoss`` centres on the masked tokens only: the first step agrees, later ones differ).

    Args:
        out_dim: size ``K`` of the patch head output (iBOT: 8192).
        teacher_temp: default :math:`\\tau_t`.
        student_temp: :math:`\\tau_s`.
        center_momentum: EMA momentum of the centre (0.9).
    """

    def forward(
        self,
        student_patches: torch.Tensor,
        teacher_patches: torch.Tensor,
        mask: torch.Tensor,
        teacher_temp: float | None = None,
    ) -> torch.Tensor:
        temp = self._teacher_temp(teacher_temp)
        loss = ibot_patch_loss(student_patches, teacher_patches, mask, self.center.center, temp, self.student_temp)
        self.center.update(teacher_patches)
        return loss

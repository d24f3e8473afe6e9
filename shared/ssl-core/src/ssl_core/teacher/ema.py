"""The exponential-moving-average teacher of BYOL, MoCo, DINO, iBOT and data2vec."""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn

from ssl_core.errors import ConfigError


class EMATeacher(nn.Module):
    r"""A frozen copy of a student network whose weights follow the student's by an exponential moving average.

    After every optimizer step (BYOL, Grill et al., 2020, eq. 1; MoCo, He et al., 2020, eq. 2):

    .. math:: \xi \leftarrow m\,\xi + (1 - m)\,\theta

    where :math:`\theta` are the student's parameters. The momentum :math:`m` is given at each step: the
    Trainer computes it as a per-step schedule (``values["ema_momentum"]``, BYOL's cosine 0.996 -> 1) and
    passes it to :meth:`ssl_core.method.Method.after_optimizer_step`, which calls :meth:`update`. All
    parameters are updated in one multi-tensor ``torch._foreach_*`` call.

    Buffers (BatchNorm running statistics, counters) are copied from the student at each update, so the
    teacher normalises with the statistics its weights were averaged alongside. The teacher never requires
    gradients; it is an ordinary submodule, so it is checkpointed with the method.

    A teacher of several parts of a method (BYOL's backbone and projector, DINO's backbone and head) is
    built from, and updated with, a mapping of the parts: ``EMATeacher({"backbone": self.backbone,
    "projector": self.projector})`` holds a copy of each under its name (``teacher.module["projector"]``),
    and ``teacher.update({"backbone": self.backbone, "projector": self.projector}, m)`` follows the live
    parts. Passing the parts at each update, rather than keeping a container of them in the method, keeps
    each student module registered once, so checkpoints hold it once.

    Args:
        student: the network to follow, or a mapping ``name -> part`` of the networks to follow; it is
            deep-copied at construction, so teacher and student start equal (BYOL, DINO).

    Shapes:
        - forward: whatever ``student`` takes and returns.
    """

    def __init__(self, student: nn.Module | Mapping[str, nn.Module]) -> None:
        super().__init__()
        self.module = copy.deepcopy(_as_module(student))
        self.module.requires_grad_(False)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def _pairs(self, student: nn.Module, kind: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        ours = dict(getattr(self.module, f"named_{kind}")())
        theirs = dict(getattr(student, f"named_{kind}")())
        if ours.keys() != theirs.keys():
            missing, extra = sorted(theirs.keys() - ours.keys()), sorted(ours.keys() - theirs.keys())
            raise ConfigError(
                f"EMATeacher.update got a student whose {kind} differ from the teacher's "
                f"(student only: {missing[:3]}, teacher only: {extra[:3]}); pass the same network, or mapping of "
                "parts, the teacher was built from, unwrapped from DistributedDataParallel"
            )
        names = list(ours)
        return [ours[k] for k in names], [theirs[k] for k in names]

    @torch.no_grad()
    def update(self, student: nn.Module | Mapping[str, nn.Module], momentum: float) -> None:
        """Move the teacher's parameters towards the student's and copy its buffers.

        Args:
            student: the network the teacher was built from, or the same mapping of parts (not wrapped in DDP).
            momentum: :math:`m` in ``[0, 1]``; 1 keeps the teacher, 0 copies the student.
        """
        if not 0.0 <= momentum <= 1.0:
            raise ConfigError(f"EMA momentum must lie in [0, 1], got {momentum}")
        student = _as_module(student)
        teacher_params, student_params = self._pairs(student, "parameters")
        if teacher_params:
            # xi <- m * xi + (1 - m) * theta, every tensor in one multi-tensor kernel per op
            torch._foreach_mul_(teacher_params, momentum)
            torch._foreach_add_(teacher_params, [p.detach() for p in student_params], alpha=1.0 - momentum)
        for ours, theirs in zip(*self._pairs(student, "buffers"), strict=True):
            ours.copy_(theirs)


def _as_module(student: nn.Module | Mapping[str, nn.Module]) -> nn.Module:
    """The student as one module: a mapping of parts gathered into a throw-away ``ModuleDict`` (its parameter
    names, ``<part>.<name>``, match the teacher's)."""
    return student if isinstance(student, nn.Module) else nn.ModuleDict(student)

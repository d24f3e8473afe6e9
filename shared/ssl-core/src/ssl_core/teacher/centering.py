"""The teacher-output centre of DINO and iBOT, kept by an EMA of batch means over all ranks."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from ssl_core.distributed import is_initialized
from ssl_core.errors import ConfigError


class Center(nn.Module):
    r"""An exponential moving average of the mean teacher output, subtracted before the teacher softmax.

    DINO (Caron et al., 2021, eq. 4) avoids collapse by centring the teacher logits,
    :math:`g_t(x) \leftarrow g_t(x) - c`, with

    .. math:: c \leftarrow m\,c + (1 - m)\,\frac{1}{B}\sum_{i=1}^{B} g_t(x_i)

    where the mean is over the global batch: with a process group the batch sums are all-reduced over
    ranks (as in DINO's ``update_center``), so every rank keeps the same centre.

    Args:
        dim: size ``K`` of the teacher output.
        momentum: :math:`m` (DINO and iBOT: 0.9).

    Shapes:
        - :attr:`center`: ``(1, K)``
        - :meth:`update` input: ``(..., K)``; every leading position counts as one sample.
    """

    def __init__(self, dim: int, momentum: float = 0.9) -> None:
        super().__init__()
        if not 0.0 <= momentum <= 1.0:
            raise ConfigError(f"center momentum must lie in [0, 1], got {momentum}")
        self.momentum = momentum
        self.register_buffer("center", torch.zeros(1, dim))

    @torch.no_grad()
    def update(self, teacher_out: torch.Tensor) -> None:
        """Fold the mean of ``teacher_out`` over all ranks into the centre."""
        if teacher_out.shape[-1] != self.center.shape[1]:
            raise ValueError(f"Center of dim {self.center.shape[1]} got outputs of shape {tuple(teacher_out.shape)}")
        flat = teacher_out.detach().reshape(-1, teacher_out.shape[-1])
        total = flat.sum(dim=0, keepdim=True).to(self.center.dtype)
        count = torch.tensor(float(flat.shape[0]), dtype=self.center.dtype, device=total.device)
        if is_initialized():
            dist.all_reduce(total)
            dist.all_reduce(count)
        self.center.mul_(self.momentum).add_(total / count, alpha=1.0 - self.momentum)

"""Contrastive losses between two modalities: symmetric InfoNCE (CLIP, VATT's NCE) and MIL-NCE."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.losses._common import check_pair, check_positive, gather


def _check_temperature(temperature: float | torch.Tensor) -> None:
    if not isinstance(temperature, torch.Tensor):
        check_positive(temperature, "temperature")


def clip_loss(
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    temperature: float | torch.Tensor = 0.07,
    gather_distributed: bool = False,
) -> torch.Tensor:
    r"""Symmetric InfoNCE between paired embeddings of two modalities (CLIP, Radford et al., 2021; VATT's NCE,
    Akbari et al., 2021, eq. 4).

    With L2-normalised :math:`a_i, b_i` and :math:`s_{ij} = a_i\cdot b_j / \tau`:

    .. math::
        L = \frac{1}{2N}\sum_i \Big[-\log\frac{e^{s_{ii}}}{\sum_j e^{s_{ij}}}
            -\log\frac{e^{s_{ii}}}{\sum_j e^{s_{ji}}}\Big]

    Unlike :func:`ssl_core.losses.nt_xent`, negatives come from the other modality only. With
    ``gather_distributed=True`` both directions use the other modality's embeddings of every rank (the
    "local loss" of open_clip), and the mean over ranks is the loss of one process on the global batch.

    Args:
        z_a: embeddings of the first modality (e.g. video).
        z_b: embeddings of the second (e.g. audio or text); row ``i`` pairs with ``z_a[i]``.
        temperature: :math:`\tau`, a float or a tensor (a learned temperature; see :class:`CLIPLoss`).
        gather_distributed: take negatives from every rank.

    Shapes:
        - z_a, z_b: ``(N, D)``
        - output: scalar
    """
    check_pair(z_a, z_b, "clip_loss")
    _check_temperature(temperature)
    a, b = F.normalize(z_a, dim=1), F.normalize(z_b, dim=1)
    all_a, offset = gather(a, gather_distributed)
    all_b, _ = gather(b, gather_distributed)
    target = torch.arange(len(a), device=a.device) + offset
    a_to_b = F.cross_entropy(a @ all_b.T / temperature, target)
    b_to_a = F.cross_entropy(b @ all_a.T / temperature, target)
    return 0.5 * (a_to_b + b_to_a)


def mil_nce(
    video: torch.Tensor,
    text: torch.Tensor,
    temperature: float | torch.Tensor = 0.07,
    gather_distributed: bool = False,
) -> torch.Tensor:
    r"""Multiple-instance NCE: each anchor has a bag of candidate positives (Miech et al., 2020, eq. 1; VATT's
    video-text loss, Akbari et al., 2021, eq. 5).

    For video :math:`v_i` with its ``P`` narrations :math:`t_{i,1..P}` (L2-normalised, scores divided by
    :math:`\tau`), the positives' total mass is contrasted with all pairs that contain :math:`v_i` or one of
    its narrations:

    .. math::
        \ell_i = -\log \frac{\sum_p e^{v_i\cdot t_{i,p}}}
            {\sum_{j,p} e^{v_i\cdot t_{j,p}} + \sum_{j,p} e^{v_j\cdot t_{i,p}}}

    This is the authors' ``MILNCELoss`` (its denominator holds both directions, the positives twice), plus
    VATT's normalisation and temperature; with unit vectors and :math:`\tau = 1` the two coincide. With
    ``gather_distributed=True`` the :math:`j` of both sums range over every rank.

    Args:
        video: anchor embeddings.
        text: the bag of positive embeddings of each anchor.
        temperature: :math:`\tau` (VATT: 0.07), a float or a tensor.
        gather_distributed: take negatives from every rank.

    Shapes:
        - video: ``(N, D)``
        - text: ``(N, P, D)``
        - output: scalar
    """
    _check_temperature(temperature)
    if video.ndim != 2 or text.ndim != 3 or text.shape[0] != video.shape[0] or text.shape[2] != video.shape[1]:
        raise ValueError(
            f"mil_nce expects video (N, D) and text (N, P, D), got {tuple(video.shape)} and {tuple(text.shape)}"
        )
    v, t = F.normalize(video, dim=-1), F.normalize(text, dim=-1)
    all_v, offset = gather(v, gather_distributed)  # (N_all, D)
    all_t, _ = gather(t, gather_distributed)  # (N_all, P, D)
    n, p = t.shape[:2]
    rows = torch.einsum("id,jpd->ijp", v, all_t) / temperature  # v_i . t_{j,p}: (n, N_all, P)
    cols = torch.einsum("jd,ipd->ijp", all_v, t) / temperature  # v_j . t_{i,p}: (n, N_all, P)
    positives = rows[torch.arange(n, device=v.device), torch.arange(n, device=v.device) + offset]  # (n, P)
    numerator = torch.logsumexp(positives, dim=1)
    denominator = torch.logsumexp(torch.cat([rows.reshape(n, -1), cols.reshape(n, -1)], dim=1), dim=1)
    return (denominator - numerator).mean()


class CLIPLoss(nn.Module):
    """Module form of :func:`clip_loss`, optionally with CLIP's learned temperature.

    CLIP learns :math:`\\log(1/\\tau)`, initialised at :math:`\\log(1/0.07)` and clipped so that
    :math:`1/\\tau \\le 100`.

    Args:
        temperature: the (initial) temperature.
        learnable: learn the temperature as a parameter of this module.
        gather_distributed: take negatives from every rank.
    """

    def __init__(self, temperature: float = 0.07, learnable: bool = False, gather_distributed: bool = False) -> None:
        super().__init__()
        check_positive(temperature, "temperature")
        self.learnable, self.gather_distributed = learnable, gather_distributed
        if learnable:
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / temperature)))
        else:
            self.temperature = temperature

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        if self.learnable:
            temperature = 1 / self.logit_scale.clamp(max=math.log(100)).exp()
        else:
            temperature = self.temperature
        return clip_loss(z_a, z_b, temperature, self.gather_distributed)


class MILNCELoss(nn.Module):
    """Module form of :func:`mil_nce`.

    Args:
        temperature: softmax temperature.
        gather_distributed: take negatives from every rank.
    """

    def __init__(self, temperature: float = 0.07, gather_distributed: bool = False) -> None:
        super().__init__()
        self.temperature, self.gather_distributed = temperature, gather_distributed

    def forward(self, video: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return mil_nce(video, text, self.temperature, self.gather_distributed)

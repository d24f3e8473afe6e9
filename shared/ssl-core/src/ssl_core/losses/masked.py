"""Losses of masked modeling: reconstruction (MAE, SimMIM), token classification (MLM, DropPos), GraphMAE's SCE."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.losses._common import check_positive


def _check_patches(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, name: str) -> None:
    if pred.shape != target.shape or pred.ndim < 2:
        raise ValueError(
            f"{name} expects predictions and targets of one (B, L, P) shape, "
            f"got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if mask.shape != pred.shape[:-1]:
        raise ValueError(
            f"{name} expects a mask of shape {tuple(pred.shape[:-1])} (one entry per patch), got {tuple(mask.shape)}"
        )


def _normalize_patches(target: torch.Tensor, eps: float) -> torch.Tensor:
    # MAE's norm_pix_loss: each patch to zero mean and unit (unbiased) variance
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, keepdim=True)
    return (target - mean) / (var + eps) ** 0.5


def _masked_mean(per_patch: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(per_patch.dtype)
    # an all-visible batch contributes 0 instead of 0/0
    return (per_patch * m).sum() / m.sum().clamp(min=1.0)


def _masked_patch_error(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    norm_pix: bool,
    eps: float,
    error: Callable[[torch.Tensor], torch.Tensor],
    name: str,
) -> torch.Tensor:
    """The body of :func:`masked_mse` and :func:`masked_l1`: ``error`` of the residual averaged over each
    patch's values, then over the masked patches, after the shape checks and MAE's optional per-patch target
    normalisation. Shapes: pred, target ``(B, L, P)``, mask ``(B, L)`` -> scalar."""
    _check_patches(pred, target, mask, name)
    if norm_pix:
        target = _normalize_patches(target, eps)
    return _masked_mean(error(pred - target).mean(dim=-1), mask)


def masked_mse(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, norm_pix: bool = False, eps: float = 1e-6
) -> torch.Tensor:
    r"""Mean squared error on masked patches (MAE; He et al., 2022, Sec. 3).

    .. math:: L = \frac{\sum_{b,l} m_{bl}\, \frac1P\lVert \hat x_{bl} - x_{bl}\rVert^2}{\sum_{b,l} m_{bl}}

    With ``norm_pix=True`` each target patch is first normalised by its own mean and (unbiased) variance,
    which MAE found to improve the representation. As ``forward_loss`` of the MAE code.

    Args:
        pred: decoder predictions per patch.
        target: target patches (pixels, or features for feature-prediction methods).
        mask: 1 / True on masked patches, where the loss is taken.
        norm_pix: normalise each target patch.
        eps: added to the patch variance.

    Shapes:
        - pred, target: ``(B, L, P)``
        - mask: ``(B, L)``
        - output: scalar
    """
    return _masked_patch_error(pred, target, mask, norm_pix, eps, torch.square, "masked_mse")


def masked_l1(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, norm_pix: bool = False, eps: float = 1e-6
) -> torch.Tensor:
    r"""Mean absolute error on masked patches (SimMIM; Xie et al., 2022, eq. 1).

    .. math:: L = \frac{\sum_{b,l} m_{bl}\, \frac1P\lVert \hat x_{bl} - x_{bl}\rVert_1}{\sum_{b,l} m_{bl}}

    SimMIM computes it on the pixels of masked patches, which is this mean when the patches are flattened
    per patch. ``norm_pix`` as in :func:`masked_mse`.

    Args:
        pred: predictions per patch.
        target: target patches.
        mask: 1 / True on masked patches.
        norm_pix: normalise each target patch.
        eps: added to the patch variance.

    Shapes:
        - pred, target: ``(B, L, P)``
        - mask: ``(B, L)``
        - output: scalar
    """
    return _masked_patch_error(pred, target, mask, norm_pix, eps, torch.abs, "masked_l1")


def masked_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
) -> torch.Tensor:
    r"""Cross entropy over the selected positions of a sequence: masked-token prediction (BERT, Devlin et al.,
    2019) and position prediction (DropPos, Wang et al., 2023).

    .. math:: L = \frac{1}{|M|}\sum_{(b,l) \in M} -\sum_c q_{blc}\log \mathrm{softmax}(z_{bl})_c,
        \qquad q = (1 - \varepsilon)\,y + \varepsilon / C

    where :math:`M` are the positions with ``mask`` True (or, without a mask, whose integer target is not
    ``ignore_index``: the ``-100`` labels of Hugging Face collators), :math:`y` is the one-hot target or a
    given target distribution (DropPos's position smoothing builds one from patch distances), and
    :math:`\varepsilon` is the label smoothing.

    Args:
        logits: class scores per position.
        targets: class indices, or a distribution over the ``C`` classes per position.
        mask: True where the loss is taken.
        label_smoothing: :math:`\varepsilon \in [0, 1)`.
        ignore_index: integer target that marks positions without a loss (used when ``mask`` is None).

    Shapes:
        - logits: ``(B, L, C)``
        - targets: ``(B, L)`` long or ``(B, L, C)`` float
        - mask: ``(B, L)``
        - output: scalar (0 when no position is selected)
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1), got {label_smoothing}")
    soft = targets.is_floating_point()
    if logits.ndim < 2 or targets.shape != (logits.shape if soft else logits.shape[:-1]):
        raise ValueError(
            f"masked_cross_entropy expects logits (..., C) with targets (...) or (..., C), got "
            f"{tuple(logits.shape)} and {tuple(targets.shape)}"
        )
    if mask is None:
        if soft:
            raise ValueError("masked_cross_entropy with target distributions needs a mask of the positions to score")
        mask = targets != ignore_index
    elif mask.shape != logits.shape[:-1]:
        raise ValueError(f"mask must have shape {tuple(logits.shape[:-1])}, got {tuple(mask.shape)}")
    mask = mask.bool()
    if not mask.any():
        return logits.sum() * 0.0  # keeps the graph, so a batch without masked tokens still backpropagates
    return F.cross_entropy(logits[mask], targets[mask], label_smoothing=label_smoothing)


def sce(pred: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, mask: torch.Tensor | None = None) -> torch.Tensor:
    r"""Scaled cosine error (GraphMAE; Hou et al., 2022, eq. 3).

    .. math::
        L = \frac{1}{|M|}\sum_{i \in M}\Big(1 - \frac{x_i^\top z_i}{\lVert x_i\rVert\,\lVert z_i\rVert}\Big)^{\alpha}

    The exponent :math:`\alpha \ge 1` down-weights easy samples (those already reconstructed well).

    Args:
        pred: reconstructed features.
        target: original features.
        alpha: scaling exponent :math:`\alpha` (GraphMAE: 1 to 3, 2 by default).
        mask: True on the rows to score (the masked nodes); all rows without it.

    Shapes:
        - pred, target: ``(N, D)``
        - mask: ``(N,)``
        - output: scalar
    """
    check_positive(alpha, "alpha")
    if pred.shape != target.shape:
        raise ValueError(
            f"sce expects predictions and targets of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    err = (1 - (F.normalize(pred, dim=-1) * F.normalize(target, dim=-1)).sum(dim=-1)).pow(alpha)
    if mask is None:
        return err.mean()
    if mask.shape != err.shape:
        raise ValueError(f"sce expects a mask of shape {tuple(err.shape)}, got {tuple(mask.shape)}")
    return _masked_mean(err, mask)


class _MaskedPatchLoss(nn.Module):
    """A masked patch-reconstruction loss as a module; subclasses name the functional form in ``fn``."""

    def __init__(self, norm_pix: bool = False) -> None:
        super().__init__()
        self.norm_pix = norm_pix

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.fn(pred, target, mask, self.norm_pix)


class MaskedMSELoss(_MaskedPatchLoss):
    """Module form of :func:`masked_mse` (MAE).

    Args:
        norm_pix: normalise each target patch.
    """

    fn = staticmethod(masked_mse)


class MaskedL1Loss(_MaskedPatchLoss):
    """Module form of :func:`masked_l1` (SimMIM).

    Args:
        norm_pix: normalise each target patch.
    """

    fn = staticmethod(masked_l1)


class MaskedCrossEntropyLoss(nn.Module):
    """Module form of :func:`masked_cross_entropy` (MLM, DropPos).

    Args:
        label_smoothing: uniform label smoothing.
        ignore_index: integer target without a loss.
    """

    def __init__(self, label_smoothing: float = 0.0, ignore_index: int = -100) -> None:
        super().__init__()
        self.label_smoothing, self.ignore_index = label_smoothing, ignore_index

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return masked_cross_entropy(logits, targets, mask, self.label_smoothing, self.ignore_index)


class SCELoss(nn.Module):
    """Module form of :func:`sce` (GraphMAE).

    Args:
        alpha: scaling exponent.
    """

    def __init__(self, alpha: float = 2.0) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return sce(pred, target, self.alpha, mask)

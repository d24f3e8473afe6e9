"""The per-pixel linear segmentation probe (the ``seg_miou`` column of the scene recipes).

A frozen backbone gives a feature map per image (a ViT's patch tokens on its patch grid, a ResNet's last feature
map); a linear classifier -- a 1x1 convolution -- turns every cell of the map into class logits, which are
bilinearly upsampled to the pixels and scored by cross-entropy against the pixel labels, and the probe reports the
mean intersection over union of its predictions on held-out images. This is the linear segmentation protocol of
DINO / DINOv2 / iBOT (a linear layer on frozen patch tokens, logits upsampled to the label resolution), fitted here
with L-BFGS on standardised features instead of SGD, so the score does not depend on a learning rate.

Fitting on every pixel of 1,000 scenes of 56x56 would cost three million upsampled pixels per step. Bilinear
upsampling and a 1x1 convolution are both linear and the interpolation weights sum to one, so the upsampled logits
at a pixel equal the classifier applied to the bilinearly interpolated features at that pixel; the fit therefore
samples ``pixels_per_image`` random pixels of each training image, interpolates the features there
(``grid_sample``, the same sampling as ``interpolate(mode="bilinear", align_corners=False)``) and fits a plain
softmax classifier on them. Every test pixel is scored, with the logits upsampled as in the protocol.

The backbone is only read: its features are computed in eval mode without gradients and its mode is restored;
the probe trains its own classifier.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def dense_features(backbone: nn.Module, images: torch.Tensor) -> torch.Tensor | None:
    """The feature map of a backbone, or ``None`` for a backbone that has none.

    A ViT (``forward_features`` gives tokens ``(B, [1 +] N, D)`` and ``config.patch_size`` is set) gives its patch
    tokens laid out on the patch grid (the class token is dropped); a ResNet (``forward_features`` gives a 4-D
    map) gives its last feature map. Runs as called (no mode change, no batching); see
    :func:`backbone_feature_maps` for the frozen, batched version the probe uses.

    Args:
        backbone: the network.
        images: normalised images.

    Shapes:
        - images: ``(B, C, H, W)``
        - output: ``(B, D, h, w)``: ``(H / p, W / p)`` for a ViT of patch size ``p``
    """
    forward_features = getattr(backbone, "forward_features", None)
    if forward_features is None:
        return None
    out = forward_features(images)
    if out.dim() == 4:
        return out
    patch = getattr(getattr(backbone, "config", None), "patch_size", None)
    if out.dim() != 3 or patch is None:
        return None
    h, w = images.shape[-2] // patch, images.shape[-1] // patch
    if out.shape[1] == h * w + 1:
        out = out[:, 1:]  # drop the class token
    elif out.shape[1] != h * w:
        return None
    return out.transpose(1, 2).reshape(len(out), out.shape[-1], h, w)  # (B, D, h, w)


@torch.no_grad()
def backbone_feature_maps(
    backbone: nn.Module, images: torch.Tensor, device: Any = "cpu", batch_size: int = 100
) -> torch.Tensor | None:
    """:func:`dense_features` of a frozen backbone over many images: eval mode, no gradients, in batches of
    ``batch_size`` on ``device``, the backbone's mode restored afterwards; features returned as float on the CPU.

    Shapes:
        - images: ``(N, C, H, W)``; output: ``(N, D, h, w)`` (``None`` when the backbone has no feature map)
    """
    was_training = backbone.training
    backbone.eval()
    try:
        out = []
        for i in range(0, len(images), batch_size):
            f = dense_features(backbone, images[i : i + batch_size].to(device))
            if f is None:
                return None
            out.append(f.float().cpu())
        return torch.cat(out)
    finally:
        backbone.train(was_training)


def raw_patch_features(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """The raw-input baseline of the probe: the pixels of each ``patch_size`` x ``patch_size`` patch as its features.

    Shapes:
        - images: ``(N, C, H, W)`` with ``H``, ``W`` multiples of ``patch_size``
        - output: ``(N, C * p * p, H / p, W / p)``
    """
    return F.pixel_unshuffle(images.float(), patch_size)


def mean_iou(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None = 255) -> float:
    """Mean intersection over union over the classes present in ``target`` or ``pred`` (a class in neither is left
    out); pixels whose target is ``ignore_index`` are not counted.

    Shapes:
        - pred, target: any shape, the same; class indices in ``[0, num_classes)`` (target may hold ``ignore_index``)
    """
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    if len(target) == 0:
        raise ValueError("mean_iou: every pixel is ignored")
    cm = torch.bincount(target * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)
    inter = cm.diag().double()
    union = cm.sum(0).double() + cm.sum(1).double() - inter
    present = union > 0
    return float((inter[present] / union[present]).mean())


def _pixel_grid(rows: torch.Tensor, cols: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``grid_sample`` coordinates (x, y in [-1, 1], ``align_corners=False``) of pixel centres.

    Shapes:
        - rows, cols: ``(N, K)``; output: ``(N, 1, K, 2)``
    """
    x = (2 * cols.float() + 1) / width - 1
    y = (2 * rows.float() + 1) / height - 1
    return torch.stack([x, y], dim=-1)[:, None]


def sample_pixel_features(features: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, size: tuple[int, int]):
    """The features bilinearly interpolated at chosen pixels of the ``size`` label grid, exactly what
    ``F.interpolate(features, size, mode="bilinear", align_corners=False)`` gives there.

    Shapes:
        - features: ``(N, D, h, w)``; rows, cols: ``(N, K)`` pixel indices; output: ``(N, K, D)``
    """
    grid = _pixel_grid(rows, cols, *size)
    out = F.grid_sample(features.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[:, :, 0].transpose(1, 2)  # (N, D, 1, K) -> (N, K, D)


def linear_segmentation_miou(
    features_train: torch.Tensor,
    labels_train: torch.Tensor,
    features_test: torch.Tensor,
    labels_test: torch.Tensor,
    num_classes: int = 11,
    pixels_per_image: int = 128,
    steps: int = 60,
    weight_decay: float = 1e-4,
    ignore_index: int | None = 255,
    seed: int = 0,
) -> float:
    """The mean IoU of a per-pixel linear classifier on frozen feature maps.

    A 1x1 convolution (weights and bias) on the standardised features gives logits per feature cell, bilinearly
    upsampled to the label resolution; it is fitted by cross-entropy (plus ``weight_decay`` times the squared
    weights) with L-BFGS, starting from zero, on ``pixels_per_image`` random pixels of every training image (see
    the module's docstring), and scored on every test pixel by :func:`mean_iou`. Deterministic for a ``seed``.

    Args:
        features_train, features_test: frozen feature maps (any ``h, w``: a ViT's patch grid, a ResNet's map).
        labels_train, labels_test: pixel classes (``ignore_index`` where unknown).
        num_classes: classes of the labels (11 for the scenes: background and the 10 Fashion-MNIST classes).
        pixels_per_image: training pixels sampled per training image.
        steps: L-BFGS iterations.
        weight_decay: L2 penalty on the classifier's weights.
        ignore_index: the label of pixels that are neither fitted nor scored (``None``: none).
        seed: the pixel sampling's seed.

    Shapes:
        - features_*: ``(N, D, h, w)``; labels_*: ``(N, H, W)`` int64

    Returns:
        The mean IoU on the test images, a fraction.
    """
    if features_train.shape[1] != features_test.shape[1]:
        raise ValueError(f"train features have {features_train.shape[1]} channels, test {features_test.shape[1]}")
    n, height, width = labels_train.shape
    g = torch.Generator().manual_seed(seed)
    flat = torch.rand(n, height * width, generator=g).argsort(1)[:, :pixels_per_image]  # (N, K), no repeats
    rows, cols = flat // width, flat % width
    x = sample_pixel_features(features_train, rows, cols, (height, width)).reshape(-1, features_train.shape[1])
    y = labels_train.reshape(n, -1).gather(1, flat).reshape(-1).long()
    if ignore_index is not None:
        x, y = x[y != ignore_index], y[y != ignore_index]
    mean, std = x.mean(0), x.std(0).clamp(min=1e-6)
    x = (x - mean) / std
    lin = nn.Linear(x.shape[1], num_classes)
    nn.init.zeros_(lin.weight)  # a convex problem: start at zero, draw nothing from the global generator
    nn.init.zeros_(lin.bias)
    opt = torch.optim.LBFGS(lin.parameters(), lr=1.0, max_iter=steps, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(lin(x), y) + weight_decay * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    weight = lin.weight.detach() / std  # fold the standardisation into the 1x1 convolution
    bias = lin.bias.detach() - (lin.weight.detach() * (mean / std)).sum(1)
    preds = []
    with torch.no_grad():
        for i in range(0, len(features_test), 100):
            f = features_test[i : i + 100].float()
            logits = torch.einsum("kd,ndhw->nkhw", weight, f) + bias[None, :, None, None]  # the 1x1 convolution
            logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
            preds.append(logits.argmax(1))
    return mean_iou(torch.cat(preds), labels_test, num_classes, ignore_index)


class SceneSegmentationProbe:
    """The ``seg_miou`` extra probe: :func:`linear_segmentation_miou` of a row's frozen backbone on labelled scenes,
    in the signature of :attr:`ssl_core.data.DataBundle.extra_probes` (``(row, embed, device, backbone)``).

    Rows with a backbone that has a feature map (:func:`dense_features`: ViTs, ResNets) are scored on it; the
    ``raw_input`` row (``backbone=None``) on the raw pixels of each ``patch_size`` patch
    (:func:`raw_patch_features`); other baselines and backbones without a feature map give ``None``.

    Args:
        train, test: ``(images, labels)``: normalised images and their pixel classes, as
            ``ssl_vision.data.scenes.segmentation_split`` returns them.
        num_classes: classes of the labels.
        patch_size: the patch of the raw-input baseline (the default ViT's, 7).
        batch_size: images per forward pass of the backbone.
        fit: further keyword arguments of :func:`linear_segmentation_miou` (``pixels_per_image``, ``steps`` ...).

    Shapes:
        - train / test images: ``(N, C, H, W)`` float; labels: ``(N, H, W)`` int64
    """

    def __init__(
        self,
        train: tuple[torch.Tensor, torch.Tensor],
        test: tuple[torch.Tensor, torch.Tensor],
        num_classes: int = 11,
        patch_size: int = 7,
        batch_size: int = 100,
        **fit: Any,
    ) -> None:
        self.train, self.test = train, test
        self.num_classes, self.patch_size, self.batch_size, self.fit = num_classes, patch_size, batch_size, fit

    def score(self, backbone: nn.Module | None, device: Any = "cpu") -> float | None:
        """The probe's mIoU of ``backbone`` (``None``: the raw-pixel baseline; ``None`` back when the backbone has
        no feature map)."""
        if backbone is None:
            f_train = raw_patch_features(self.train[0], self.patch_size)
            f_test = raw_patch_features(self.test[0], self.patch_size)
        else:
            f_train = backbone_feature_maps(backbone, self.train[0], device, self.batch_size)
            if f_train is None:
                return None
            f_test = backbone_feature_maps(backbone, self.test[0], device, self.batch_size)
        return linear_segmentation_miou(
            f_train, self.train[1], f_test, self.test[1], num_classes=self.num_classes, **self.fit
        )

    def __call__(self, row: str, embed: Callable[[Any], torch.Tensor], device: Any, backbone: Any) -> float | None:
        if backbone is None:
            return self.score(None) if row == "raw_input" else None
        return self.score(backbone, device)


def scene_segmentation_probe(
    train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor], num_classes: int = 11, **kw: Any
) -> SceneSegmentationProbe:
    """The ``seg_miou`` column's function for :attr:`ssl_core.data.DataBundle.extra_probes`:
    ``fn(row, embed, device, backbone) -> mIoU | None`` (see :class:`SceneSegmentationProbe`; ``kw`` goes to it).

    Shapes:
        - train / test: ``(images (N, C, H, W) float, labels (N, H, W) int64)``
    """
    return SceneSegmentationProbe(train, test, num_classes, **kw)

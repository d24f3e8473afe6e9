"""Few-shot segmentation probe (the ``fewshot_dice`` column): fine-tune a backbone's segmenter on a few labelled atlas
patches of one hemisphere, score its Dice on patches of the other.

The task, on the Colin27 MRI (``ch2``) with the AAL labels (:mod:`ssl_medical.data.atlas`):

- classes: AAL's regions grouped into 7 structures, left and right merged, plus background (everything AAL leaves
  unlabelled: white matter, CSF, outside the brain) = 8 classes (:data:`STRUCTURES`, :func:`structure_of`):
  frontal (precentral, frontal, rolandic operculum, SMA, olfactory, rectus, paracentral lobule), limbic (insula,
  cingulum, hippocampus, parahippocampal, amygdala), occipital (calcarine, cuneus, lingual, occipital), temporal
  (fusiform, Heschl, temporal), parietal (postcentral, parietal, supramarginal, angular, precuneus), deep grey
  (caudate, putamen, pallidum, thalamus), cerebellum (cerebellum and vermis);
- training data: ``shots`` patches per structure (default 2: 14 patches of 64^3), each centred on a random voxel of
  that structure, the whole patch in the left hemisphere (low indices of axis 0);
- test data: ``test_per_class`` patches per structure (default 2: 14 patches) centred likewise in the right
  hemisphere, never seen in training; every patch holds the other structures around it too (64^3 gives the
  context that tells e.g. frontal from parietal cortex: with 32^3 patches and one shot every network, pretrained
  or not, scored a Dice of 0.10-0.13 and the differences moved with the fine-tuning settings);
- fine-tuning: ``backbone.segmenter(8)`` (a new network with the backbone's weights, see
  :meth:`~ssl_medical.models.monai_nets.MonaiBackbone.segmenter`), every weight trained for ``steps`` AdamW steps
  of ``batch_size`` random training patches with MONAI's ``DiceCELoss`` (softmax, one-hot labels);
- score: MONAI's ``DiceMetric`` of the argmax prediction on all test voxels together (one Dice per class over the
  14 patches), averaged over the 7 foreground classes.

Attention networks (``backbone.heavy_finetune``: SwinUNETR, the CSwin UNet; about 1.4 s per 64^3 step of batch 2
on 2 cores against 0.1 s for the UNet) get ``large_steps`` steps of batch 1 instead, and networks that need larger
inputs than ``patch`` (``backbone.min_segment_size``) ``large_patch``^3 patches, so that each row stays within
about 30 s on 2 cores. Each row is compared with its own untrained network, fine-tuned the same way.

Everything is drawn from ``seed`` (``numpy.random.default_rng`` for the patches and the batches, a forked torch
generator for the new head's initialisation), so a row scores the same on every run on the same machine.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ssl_core.errors import DataError
from ssl_medical.data.atlas import extract_patches

STRUCTURES = ("frontal", "limbic", "occipital", "temporal", "parietal", "deep_grey", "cerebellum")

_PREFIXES = {
    "frontal": ("Precentral", "Frontal", "Rolandic", "Supp_Motor", "Olfactory", "Rectus", "Paracentral"),
    "limbic": ("Insula", "Cingulum", "Hippocampus", "ParaHippocampal", "Amygdala"),
    "occipital": ("Calcarine", "Cuneus", "Lingual", "Occipital"),
    "temporal": ("Fusiform", "Heschl", "Temporal"),
    "parietal": ("Postcentral", "Parietal", "SupraMarginal", "Angular", "Precuneus"),
    "deep_grey": ("Caudate", "Putamen", "Pallidum", "Thalamus"),
    "cerebellum": ("Cerebelum", "Vermis"),
}


def structure_of(name: str) -> int:
    """The structure class (1..7, :data:`STRUCTURES` order) of an AAL region name, e.g. ``"Frontal_Sup_L"`` -> 1.

    Raises:
        DataError: a name no structure claims (not an AAL region).
    """
    for c, s in enumerate(STRUCTURES, start=1):
        if name.startswith(_PREFIXES[s]):
            return c
    raise DataError(f"AAL region {name!r} belongs to no structure of the few-shot segmentation probe")


def structure_map(labels: np.ndarray, names: dict[int, str]) -> np.ndarray:
    """Every voxel's structure class: 0 background, 1..7 the :data:`STRUCTURES`.

    Args:
        labels: AAL region ids (0: unlabelled).
        names: region id -> AAL name.

    Shapes:
        - labels, output: ``(X, Y, Z)``; output int64
    """
    lut = np.zeros(max(int(labels.max()), max(names, default=0)) + 1, dtype=np.int64)
    for rid, name in names.items():
        lut[rid] = structure_of(name)
    return lut[labels]


@dataclass(frozen=True)
class FewShotSegConfig:
    """Settings of the few-shot segmentation probe.

    Measured per row on 2 quiet cores: the default UNet about 26 s (64^3, 150 steps); with the former 32^3 / one
    shot / 100 steps 4.5 s; SwinUNETR ``feature_size=12`` (64^3, 25 steps of batch 1) 18 s.

    Args:
        shots: training patches per structure (left hemisphere).
        test_per_class: test patches per structure (right hemisphere).
        patch: side of the cubic patches.
        steps: AdamW steps of fine-tuning.
        batch_size: patches per step.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        large_patch: patch side for networks whose ``min_segment_size`` exceeds ``patch`` (SwinUNETR: 64).
        large_steps: steps (batch 1) for those and for attention networks (``heavy_finetune``).
        seed: draws the patches, the batches and the new head's weights.
    """

    shots: int = 2
    test_per_class: int = 2
    patch: int = 64
    steps: int = 150
    batch_size: int = 2
    lr: float = 3e-3
    weight_decay: float = 1e-2
    large_patch: int = 64
    large_steps: int = 25
    seed: int = 0


@dataclass
class SegTask:
    """A few-shot segmentation task: labelled training patches and held-out test patches.

    Shapes:
        - train_x, test_x: ``(N, 1, P, P, P)`` float32
        - train_y, test_y: ``(N, 1, P, P, P)`` int64 in ``[0, num_classes)``
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int


def atlas_task(image: np.ndarray, classes: np.ndarray, cfg: FewShotSegConfig, size: int | None = None) -> SegTask:
    """The few-shot task on a volume and its class map: train patches wholly in the left half of axis 0 (low
    indices), test patches wholly in the right half, centred on random voxels of each class.

    Args:
        image: intensities in about ``[0, 1]``.
        classes: class of every voxel, 0 background.
        cfg: the probe settings (``shots``, ``test_per_class``, ``seed``).
        size: patch side (default ``cfg.patch``).

    Shapes:
        - image, classes: ``(X, Y, Z)``

    Raises:
        DataError: a class without a voxel in one of the halves.
    """
    size = int(size or cfg.patch)
    h = size // 2
    mid = image.shape[0] // 2
    num_classes = int(classes.max()) + 1
    rng = np.random.default_rng(cfg.seed)
    xs = np.arange(image.shape[0])[:, None, None]
    sides = {"train": (xs <= mid - size + h - 1, cfg.shots), "test": (xs >= mid + h + 1, cfg.test_per_class)}
    centres: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    for c in range(1, num_classes):
        for side, (half, n) in sides.items():
            voxels = np.flatnonzero((classes == c) & half)
            if len(voxels) < n:
                raise DataError(f"class {c} has {len(voxels)} voxels in the {side} half, fewer than the {n} needed")
            pick = np.sort(rng.choice(len(voxels), n, replace=False))
            centres[side].append(np.stack(np.unravel_index(voxels[pick], classes.shape), 1))
    out = []
    for side in ("train", "test"):
        cen = np.concatenate(centres[side])
        x = torch.from_numpy(extract_patches(image.astype(np.float32), cen, size)).unsqueeze(1)
        y = torch.from_numpy(extract_patches(classes.astype(np.int64), cen, size)).unsqueeze(1)
        out += [x, y]
    return SegTask(*out, num_classes=num_classes)


def dice_score(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    """Mean Dice over the foreground classes (1..``num_classes - 1``) of label maps, each class's Dice taken over
    all voxels of the batch together (MONAI ``DiceMetric``); classes absent from ``target`` are left out.

    Shapes:
        - pred, target: ``(N, 1, D, H, W)`` integer label maps
    """
    from monai.metrics import DiceMetric

    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    one = (pred.reshape(1, 1, -1, *pred.shape[3:]), target.reshape(1, 1, -1, *target.shape[3:]))
    metric = DiceMetric(include_background=False, reduction="none", num_classes=num_classes, ignore_empty=True)
    per_class = metric(*(t.long() for t in one))[0]
    return float(torch.nanmean(per_class)) if bool(torch.isfinite(per_class).any()) else float("nan")


@torch.no_grad()
def predict(net: torch.nn.Module, x: torch.Tensor, device: Any, batch_size: int = 2) -> torch.Tensor:
    """Argmax label maps of ``net`` in evaluation mode. Shapes: ``(N, 1, D, H, W)`` -> ``(N, 1, D, H, W)`` int64."""
    net.eval()
    out = [net(x[i : i + batch_size].to(device)).argmax(1, keepdim=True).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out)


def finetune_dice(
    segmenter: torch.nn.Module,
    task: SegTask,
    steps: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
    device: Any = "cpu",
) -> float:
    """Fine-tune ``segmenter`` (in place) on ``task``'s training patches, return its Dice on the test patches.

    Args:
        segmenter: ``(B, 1, D, H, W) -> (B, num_classes, D, H, W)`` logits.
        task: the patches.
        steps: AdamW steps (0: score as it is).
        batch_size: patches per step, drawn without replacement within a step.
        lr: learning rate.
        weight_decay: AdamW weight decay.
        seed: draws the batches.
        device: where to train.
    """
    from monai.losses import DiceCELoss

    segmenter.to(device).train()
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.AdamW([p for p in segmenter.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    n = len(task.train_x)
    for _ in range(steps):
        idx = torch.from_numpy(rng.choice(n, min(batch_size, n), replace=False))
        x, y = task.train_x[idx].to(device), task.train_y[idx].to(device)
        loss = loss_fn(segmenter(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return dice_score(predict(segmenter, task.test_x, device), task.test_y, task.num_classes)


def fewshot_dice_probe(
    atlas: Any = None, data_cfg: Any = None, config: FewShotSegConfig | None = None
) -> Callable[[str, Any, Any, Any], float | None]:
    """The ``fewshot_dice`` probe column for :attr:`ssl_core.data.DataBundle.extra_probes`.

    Args:
        atlas: :class:`ssl_medical.data.atlas.Atlas` (``image``, ``labels``, ``names``); ``None`` reads it with
            :func:`ssl_medical.data.atlas.load_atlas`.
        data_cfg: the data configuration; its ``seed`` (if any) seeds the probe.
        config: probe settings (default :class:`FewShotSegConfig`).

    Returns:
        ``fn(row, embed, device, backbone) -> float | None``: the mean foreground Dice of ``backbone.segmenter``
        fine-tuned on the task; ``None`` for a row without a backbone (``raw_input``) or whose backbone has no
        segmenter (ViTAutoEnc, signal and tile backbones). The patches are built on first use.
    """
    cfg = config or FewShotSegConfig()
    if data_cfg is not None and getattr(data_cfg, "seed", None) is not None and config is None:
        cfg = FewShotSegConfig(seed=int(data_cfg.seed))
    tasks: dict[int, SegTask] = {}
    state = {"atlas": atlas}

    def task(size: int) -> SegTask:
        if size not in tasks:
            if state["atlas"] is None:
                from ssl_medical.data.atlas import load_atlas

                state["atlas"] = load_atlas()
            a = state["atlas"]
            tasks[size] = atlas_task(a.image, structure_map(a.labels, a.names), cfg, size)
        return tasks[size]

    def probe(row: str, embed: Any, device: Any, backbone: Any) -> float | None:
        make = getattr(backbone, "segmenter", None)
        if backbone is None or not callable(make):
            return None
        large = int(getattr(backbone, "min_segment_size", cfg.patch)) > cfg.patch
        heavy = large or bool(getattr(backbone, "heavy_finetune", False))
        size = cfg.large_patch if large else cfg.patch
        steps, batch = (cfg.large_steps, 1) if heavy else (cfg.steps, cfg.batch_size)
        t = task(size)
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            net = make(t.num_classes)
            if net is None:
                return None
            score = finetune_dice(net, t, steps, batch, cfg.lr, cfg.weight_decay, cfg.seed, device)
        print(
            f"fewshot_dice {row}: {score:.4f} ({steps} steps on {len(t.train_x)} patches of {size}^3, "
            f"{time.perf_counter() - start:.1f} s)",
            file=sys.stderr,
        )
        return score

    return probe

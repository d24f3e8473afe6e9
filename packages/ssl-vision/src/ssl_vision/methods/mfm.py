"""MFM (Zhou et al., 2025, "Masked Feature Modeling Enhances Adaptive Segmentation").

Unsupervised domain-adaptive semantic segmentation: a labelled source domain (clean scenes with per-pixel
labels) and an unlabelled target domain (styled scenes). The frame is the standard UDA self-training of
DACS / DAFormer:

- ``L_src``: per-pixel cross-entropy of the student (ViT encoder + light segmentation decoder) on source scenes;
- ``L_st``: an EMA teacher of encoder and decoder labels each target scene with its most likely class per
  pixel; the student is trained with cross-entropy on these pseudo-labels, weighted by their quality, the
  share of the batch's pixels whose teacher confidence reaches ``pseudo_threshold`` (DAFormer's 0.968);
- ``L_mfm`` (MFM's addition): a random ``mask_ratio`` of the student's target feature tokens is replaced by a
  learned mask token, a light :class:`~ssl_vision.models.segmentation.Rebuilder` rebuilds the full feature
  map, and the *segmentation decoder* classifies the rebuilt features, supervised by the same weighted
  pseudo-labels -- the coupling of the auxiliary task to the main one that the paper argues for. The
  Rebuilder is discarded at inference.

With ``class_mix`` (DACS's ClassMix, Tranheden et al., 2021, the mixing of DAFormer), the student does not see
the target scene itself but a mix: the source scene's pixels of half of its present classes (background included,
chosen at random per scene) pasted onto the target scene; the mixed label is the source label there and the
teacher's pseudo-label (of the unmixed target) elsewhere, and the pixel weight is 1 on pasted pixels and the
quality weight elsewhere. ``L_st`` and ``L_mfm`` are then computed on the mixed scene's features.

``loss = L_src + L_st + mfm_weight * L_mfm``. ``mode`` selects the comparison of the issue with the same recipe
and budget: ``"mfm"`` (all three terms), ``"self_training"`` (no ``L_mfm``), ``"source_only"`` (``L_src``
alone; no mixing). :meth:`MFM.head_scores` reports the mean IoU of the method's own encoder and decoder on
held-out labelled target (styled) and source (clean) test scenes. Not here: DACS's colour jitter / blur of the
mixed image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import default_collate

from ssl_core.errors import ConfigError
from ssl_core.masking import random_mask
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_core.teacher import EMATeacher
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.common import backbone_spec, build_vit_for
from ssl_vision.models.segmentation import Rebuilder, SegmentationDecoder
from ssl_vision.models.vit import ViTConfig
from ssl_vision.probes.segmentation import mean_iou

MODES = ("mfm", "self_training", "source_only")
IGNORE_INDEX = 255
DOMAIN_KEYS = ("source", "source_labels", "target")
DATA_FIX = "set data.name=scenes data.scene_items=domains (items {'source', 'source_labels', 'target'})"


@dataclass
class MFMConfig:
    """MFM settings (``--set method.<name>=<value>``).

    Args:
        mode: ``mfm`` (source CE + pseudo-label self-training + masked feature modeling), ``self_training``
            (no masked feature modeling) or ``source_only`` (source CE alone).
        backbone: the ViT encoder (ViT-tiny width, 4 blocks, 7-pixel patches: 8x8 tokens of a 56x56 scene; the
            scene recipes' backbone).
        decoder_hidden: channels of the segmentation decoder.
        num_classes: classes of the segmentation (``None``: background + the data's classes, 11 on scenes).
        mask_ratio: share of the target feature tokens the Rebuilder sees masked.
        rebuilder_depth: transformer blocks of the Rebuilder (light: 1).
        mfm_weight: weight of ``L_mfm`` (the paper's lambda).
        pseudo_threshold: teacher confidence a pixel needs to count towards the pseudo-label quality weight
            (DAFormer: 0.968).
        flip: random horizontal flips of source (with its labels) and target scenes.
        class_mix: DACS ClassMix of source classes onto the target scene for the student's target terms
            (``mfm`` and ``self_training``; ``source_only`` never mixes).
        head_scenes: labelled test scenes per domain that :meth:`MFM.head_scores` segments.
    """

    mode: str = "mfm"
    backbone: ViTConfig = field(default_factory=lambda: ViTConfig(patch_size=7, depth=4))
    decoder_hidden: int = 128
    num_classes: int | None = None
    mask_ratio: float = 0.5
    rebuilder_depth: int = 1
    mfm_weight: float = 1.0
    pseudo_threshold: float = 0.968
    flip: bool = True
    class_mix: bool = True
    head_scenes: int = 500

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"method.mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ConfigError(f"method.mask_ratio must lie in (0, 1), got {self.mask_ratio}")
        if not 0.0 < self.pseudo_threshold < 1.0:
            raise ConfigError(f"method.pseudo_threshold must lie in (0, 1), got {self.pseudo_threshold}")
        if self.mfm_weight < 0 or self.rebuilder_depth < 1 or self.decoder_hidden < 1 or self.head_scenes < 1:
            raise ConfigError(
                "method.mfm_weight must be >= 0 and method.rebuilder_depth, decoder_hidden, head_scenes positive"
            )


def pseudo_labels(teacher_logits: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's pseudo-labels and their quality weight (DACS / DAFormer).

    Each pixel gets the teacher's most likely class; the weight is the share of all pixels of the batch whose
    softmax confidence reaches ``threshold``, one number for the whole batch as in DAFormer.

    Shapes:
        - teacher_logits: ``(B, K, H, W)``
        - output: labels ``(B, H, W)`` int64; weight ``()`` (no gradient)
    """
    confidence, labels = teacher_logits.detach().softmax(dim=1).max(dim=1)
    return labels, (confidence >= threshold).float().mean()


def class_mix_mask(labels: torch.Tensor) -> torch.Tensor:
    """DACS ClassMix mask of one source scene: its pixels of a random half of the classes present in ``labels``
    (``ceil(n / 2)`` of ``n`` classes, background included; ``IGNORE_INDEX`` pixels never). Randomness from
    torch's global generator.

    Shapes:
        - labels: ``(H, W)`` int64
        - output: ``(H, W)`` bool, True where the source pixel is pasted
    """
    classes = labels.unique()
    classes = classes[classes != IGNORE_INDEX]
    chosen = classes[torch.randperm(len(classes))[: (len(classes) + 1) // 2]]
    return torch.isin(labels, chosen)


def class_mix(
    source: torch.Tensor,
    target: torch.Tensor,
    source_labels: torch.Tensor,
    pseudo: torch.Tensor,
    weight: torch.Tensor | float,
    mix: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ClassMix of DACS / DAFormer: paste the source pixels marked by ``mix`` onto the target scene.

    Args:
        source, target: the images (normalised).
        source_labels: the source's labels; ``pseudo``: the teacher's pseudo-labels of the (unmixed) target.
        weight: the pseudo-labels' quality weight (a scalar or per pixel).
        mix: True where the source pixel is pasted (:func:`class_mix_mask`).

    Shapes:
        - source, target: ``(B, C, H, W)``; source_labels, pseudo, mix: ``(B, H, W)``
        - output: mixed images ``(B, C, H, W)``, mixed labels ``(B, H, W)``, pixel weights ``(B, H, W)`` (1 on
          pasted pixels, ``weight`` elsewhere; no gradient)
    """
    images = torch.where(mix[:, None], source, target)
    labels = torch.where(mix, source_labels, pseudo)
    weight = torch.as_tensor(weight, dtype=source.dtype, device=source.device).detach()
    pixel_weight = torch.where(mix, torch.ones_like(mix, dtype=source.dtype), weight.expand(mix.shape))
    return images, labels, pixel_weight


def weighted_pixel_ce(logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | float) -> torch.Tensor:
    """Mean over pixels of ``weight`` times the per-pixel cross-entropy (DAFormer's weighted pseudo-label loss).

    Shapes:
        - logits: ``(B, K, H, W)``; labels: ``(B, H, W)``; weight: a scalar or broadcastable to ``(B, H, W)``
        - output: ``()``
    """
    return (F.cross_entropy(logits, labels, reduction="none") * weight).mean()


class DomainPretext:
    """``{"source", "source_labels", "target"} -> + {"mask", "mix"}``: random flips, the MFM feature mask and the
    ClassMix mask per item.

    The source scene is flipped together with its labels and the target scene independently (each with
    probability 1/2, when ``flip``); the mask marks ``mask_ratio`` of the ``num_patches`` target tokens
    (:func:`ssl_core.masking.random_mask`). Randomness comes from torch's global generator (seeded per
    sample by the trainer). With ``class_mix``, ``mix`` marks the (flipped) source's pixels of half of its
    classes (:func:`class_mix_mask`); without, it is all False. :meth:`collate` batches the items and
    normalises the images. Picklable.

    Args:
        num_patches: feature tokens per scene.
        mask_ratio: share of masked tokens.
        mean, std: the images' normalisation (per channel, in [0, 1] units).
        flip: draw the random flips.
        class_mix: draw the ClassMix masks.

    Shapes:
        - item: source, target ``(C, S, S)`` uint8; source_labels ``(S, S)`` int64
        - collated: source, target ``(B, C, S, S)`` float, normalised; source_labels ``(B, S, S)``; mask
          ``(B, N)`` bool, True where masked; mix ``(B, S, S)`` bool
    """

    def __init__(
        self,
        num_patches: int,
        mask_ratio: float,
        mean: Sequence[float],
        std: Sequence[float],
        flip: bool,
        class_mix: bool = False,
    ):
        self.num_patches, self.mask_ratio, self.flip, self.class_mix = num_patches, mask_ratio, flip, class_mix
        self.mean, self.std = list(mean), list(std)

    def __call__(self, item: Any) -> dict[str, torch.Tensor]:
        if not isinstance(item, Mapping) or any(k not in item for k in DOMAIN_KEYS):
            got = sorted(item) if isinstance(item, Mapping) else type(item).__name__
            raise ConfigError(f"MFM trains on scene domains but got items {got}: {DATA_FIX}")
        source, labels, target = item["source"], item["source_labels"], item["target"]
        if self.flip:
            if bool(torch.rand(()) < 0.5):
                source, labels = source.flip(-1), labels.flip(-1)
            if bool(torch.rand(()) < 0.5):
                target = target.flip(-1)
        labels = labels.long()
        mask = random_mask(1, self.num_patches, self.mask_ratio).mask[0]
        mix = class_mix_mask(labels) if self.class_mix else torch.zeros(labels.shape, dtype=torch.bool)
        return {"source": source, "source_labels": labels, "target": target, "mask": mask, "mix": mix}

    def collate(self, items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Batch the items; images become normalised floats."""
        batch = default_collate(list(items))
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        for key in ("source", "target"):
            batch[key] = (batch[key].float() / 255 - mean) / std
        return batch


class MFM(Method):
    """UDA segmentation by self-training with masked feature modeling (see the module docstring).

    The exported backbone is the ViT encoder; the decoder, the Rebuilder and the EMA teacher (of encoder and
    decoder) are the method's own.

    Shapes:
        - batch: ``{"source": (B, C, S, S), "source_labels": (B, S, S), "target": (B, C, S, S), "mask": (B, N),
          "mix": (B, S, S)}``
        - :meth:`segment`: ``(B, C, S, S) -> (B, K, S, S)`` logits
        - :meth:`embed`: ``(B, C, S, S) -> (B, embed_dim)``
    """

    def __init__(self, config: MFMConfig, info: ImageInfo) -> None:
        super().__init__()
        if getattr(info, "scenes", None) is None:
            raise ConfigError(f"MFM trains on labelled source and unlabelled target scenes: {DATA_FIX}")
        if config.num_classes is None and info.num_classes is None:
            raise ConfigError("MFM needs the number of classes: set method.num_classes or use labelled scenes")
        self.config, self.info = config, info
        self.num_classes = config.num_classes or 1 + info.num_classes
        self.backbone = build_vit_for(config.backbone, info)
        vit = self.backbone
        self.decoder = SegmentationDecoder(vit.embed_dim, self.num_classes, vit.grid, config.decoder_hidden)
        if config.mode == "mfm":
            self.rebuilder = Rebuilder(vit.embed_dim, vit.grid, config.rebuilder_depth, vit.config.heads)
        if config.mode != "source_only":
            self.teacher = EMATeacher(self._student())

    def _student(self) -> dict[str, torch.nn.Module]:
        return {"backbone": self.backbone, "decoder": self.decoder}

    @staticmethod
    def tokens(backbone, images: torch.Tensor) -> torch.Tensor:
        """Patch tokens of the encoder, ``(B, C, S, S) -> (B, N, D)`` (the class token dropped)."""
        return backbone.forward_features(images)[:, 1:]

    def segment(self, images: torch.Tensor) -> torch.Tensor:
        """Pixel logits of the student encoder + decoder, ``(B, C, S, S) -> (B, K, S, S)``."""
        return self.decoder(self.tokens(self.backbone, images), images.shape[-1])

    def pretext(self) -> DomainPretext:
        return DomainPretext(
            self.backbone.num_patches,
            self.config.mask_ratio,
            self.info.mean,
            self.info.std,
            self.config.flip,
            self.config.class_mix and self.config.mode != "source_only",
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> MethodOutput:
        source, labels, target = batch["source"], batch["source_labels"], batch["target"]
        size, mode = source.shape[-1], self.config.mode
        if mode == "source_only":
            loss = F.cross_entropy(self.segment(source), labels, ignore_index=IGNORE_INDEX)
            return MethodOutput(loss, {"loss_src": loss.detach()})
        with torch.no_grad():
            teacher = self.teacher.module
            teacher_logits = teacher["decoder"](self.tokens(teacher["backbone"], target), size)
        plabels, quality = pseudo_labels(teacher_logits, self.config.pseudo_threshold)
        weight = quality
        if self.config.class_mix:  # the student sees source classes pasted onto the target (DACS)
            target, plabels, weight = class_mix(source, target, labels, plabels, weight, batch["mix"])
        tokens = self.tokens(self.backbone, torch.cat([source, target]))  # one encoder pass: (2B, N, D)
        src_tokens, tgt_tokens = tokens.split(len(source))
        loss_src = F.cross_entropy(self.decoder(src_tokens, size), labels, ignore_index=IGNORE_INDEX)
        loss_st = weighted_pixel_ce(self.decoder(tgt_tokens, size), plabels, weight)
        logs = {"loss_src": loss_src.detach(), "loss_st": loss_st.detach(), "pseudo_weight": quality}
        loss = loss_src + loss_st
        if mode == "mfm":
            rebuilt = self.rebuilder(tgt_tokens, batch["mask"])
            loss_mfm = weighted_pixel_ce(self.decoder(rebuilt, size), plabels, weight)
            loss = loss + self.config.mfm_weight * loss_mfm
            logs["loss_mfm"] = loss_mfm.detach()
        return MethodOutput(loss, logs)

    def after_optimizer_step(self, step: int, values: Mapping[str, float]) -> None:
        if self.config.mode != "source_only":
            self.teacher.update(self._student(), values["ema_momentum"])

    @torch.no_grad()
    def segmentation_miou(self, images: torch.Tensor, labels: torch.Tensor, device, batch_size: int = 250) -> float:
        """Mean IoU of the student's segmentation of ``images`` against ``labels``, per-class counts summed over
        all images (:func:`ssl_vision.probes.segmentation.mean_iou`).

        Shapes:
            - images: ``(N, C, S, S)`` normalised floats; labels: ``(N, S, S)``
        """
        pred = [
            self.segment(images[i : i + batch_size].to(device)).argmax(dim=1).cpu()
            for i in range(0, len(images), batch_size)
        ]
        return mean_iou(torch.cat(pred), labels, self.num_classes, IGNORE_INDEX)

    @torch.no_grad()
    def head_scores(self, bundle: Any, device: torch.device) -> Mapping[str, float]:
        """Mean IoU of encoder + decoder on ``head_scenes`` labelled test scenes of the target (styled) and the
        source (clean) domain: columns ``target_miou`` and ``source_miou``."""
        from ssl_vision.data.scenes import segmentation_split

        scores = {}
        for column, style in (("target_miou", "styled"), ("source_miou", "clean")):
            images, labels = segmentation_split(bundle.info, self.config.head_scenes, split="test", style=style)
            scores[column] = self.segmentation_miou(images, labels, device)
        return scores

    def backbone_spec(self) -> BackboneSpec:
        return backbone_spec(self.backbone, self.info)

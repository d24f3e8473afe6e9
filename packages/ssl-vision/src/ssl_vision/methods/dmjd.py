"""DMJD (Ma et al., 2023, "Disjoint Masking with Joint Distillation for Efficient Masked Image Modeling").

As the paper and its reference code (github.com/mx-mark/DMJD, ``models_dmjd.py``, ``engine_pretrain.py``):

- **Disjoint masking.** Each image is seen ``n_views`` times (2) under masks of MAE's ratio whose masked sets
  overlap as little as possible (:func:`ssl_core.masking.disjoint_masks`): with two views at 0.75 the second
  view masks every patch the first one sees, so the visible sets are disjoint and every patch is predicted,
  while each view keeps the usual masking ratio. The views are stacked along the batch.
- **Masked branch.** The ViT encoder sees the visible patches of a view; MAE's light decoder
  (:class:`~ssl_vision.models.decoder.MaskedDecoder`) predicts the target of every patch; L2 on the masked
  patches (the reference's ``mim_loss_type='l2'``).
- **Visible (joint) distillation branch.** The encoded visible tokens go through a projector (3 linear layers with
  LayerNorm and GELU, the last LayerNorm without affine parameters) and a linear predictor to the same targets
  of the *visible* patches, with a smooth-L1 loss (``beta=2``; ``vis_loss_type='smooth_l1'``). The reference
  distils from the target features themselves (no teacher network): the visible tokens must keep the HOG of
  their own patches.
- **Targets.** HOG (the reference's default ``pred_type='hog'``): per-cell orientation histograms of the grey
  levels (0-255), each cell standardised over its bins, the cells of a patch concatenated
  (:func:`~ssl_vision.transforms.hog.hog_patch_targets`); ``target="pixels"`` uses MAE's normalised pixels.
- **Loss** ``L = L_mim + theta * L_vis`` (``theta=1``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import default_collate

from ssl_core.errors import ConfigError
from ssl_core.losses import masked_mse
from ssl_core.masking import disjoint_masks
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.common import backbone_spec, build_vit_for
from ssl_vision.models.decoder import MaskedDecoder
from ssl_vision.models.vit import ViTConfig, patchify
from ssl_vision.transforms.hog import hog_patch_targets, hog_target_dim
from ssl_vision.transforms.views import View, ViewConfig, mae_view

TARGETS = ("hog", "pixels")


@dataclass
class DMJDConfig:
    """DMJD settings (``--set method.<name>=<value>``).

    Args:
        backbone: the ViT encoder (MAE's default: ViT-tiny, 7-pixel patches, 16 patches of a 28x28 image).
        decoder_dim: width of MAE's light decoder and of the visible branch's projector (128, as MAE's recipe).
        decoder_depth: decoder blocks (2, as MAE's recipe; the reference's base model has 8).
        decoder_heads: decoder attention heads (4).
        mask_ratio: share of masked patches in each view (0.75, MAE's ratio and the reference model's default).
        n_views: masked views per image, stacked along the batch (2, as the reference).
        target: ``"hog"`` (the paper's) or ``"pixels"`` (MAE's per-patch normalised pixels).
        hog_cells_per_patch: HOG cells along each side of a patch (2, as the reference's 8-pixel cells in
            16-pixel patches; see :func:`~ssl_vision.transforms.hog.hog_patch_targets`).
        hog_orientations: HOG orientation bins (9).
        norm_pix_loss: with pixel targets, normalise each target patch (MAE's better setting).
        vis_weight: ``theta``, the weight of the visible distillation loss (1.0).
        vis_beta: the smooth-L1 threshold of the visible loss (2.0, as the reference).
        view: the light augmentation (MAE's random resized crop and flip); the views of an image share it and
            differ only in their masks, as the reference.
    """

    backbone: ViTConfig = field(default_factory=lambda: ViTConfig(patch_size=7))
    decoder_dim: int = 128
    decoder_depth: int = 2
    decoder_heads: int = 4
    mask_ratio: float = 0.75
    n_views: int = 2
    target: str = "hog"
    hog_cells_per_patch: int = 2
    hog_orientations: int = 9
    norm_pix_loss: bool = True
    vis_weight: float = 1.0
    vis_beta: float = 2.0
    view: ViewConfig = field(default_factory=mae_view)


class DisjointMaskedViews:
    """``image -> {"image", "mask", "ids_keep", "ids_restore"}``: one augmented view of the image and ``n_views``
    disjoint masks of it (:func:`ssl_core.masking.disjoint_masks`).

    The masks, then the view's parameters, are drawn per image from torch's global generator (which the trainer
    seeds per sample); the view's pixels are computed per batch in :meth:`collate`. Picklable.

    Args:
        view: the view.
        num_patches: patches per image ``L``.
        mask_ratio: share of masked patches in each view.
        n_views: masks per image ``V``.

    Shapes:
        - collated: image ``(B, C, H, W)``; mask ``(B, V, L)`` bool, True on masked patches; ids_keep
          ``(B, V, L_keep)``; ids_restore ``(B, V, L)``
    """

    def __init__(self, view: View, num_patches: int, mask_ratio: float, n_views: int) -> None:
        self.view, self.num_patches, self.mask_ratio, self.n_views = view, num_patches, mask_ratio, n_views

    def __call__(self, image: torch.Tensor) -> dict[str, Any]:
        masks = disjoint_masks(self.n_views, 1, self.num_patches, self.mask_ratio)
        return {
            "image": image,
            "view": torch.tensor(self.view.draw(image)),
            "mask": torch.cat([m.mask for m in masks]),
            "ids_keep": torch.cat([m.ids_keep for m in masks]),
            "ids_restore": torch.cat([m.ids_restore for m in masks]),
        }

    def collate(self, items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Batch the masks and render the views."""
        batch = default_collate(list(items))
        batch["image"] = self.view.render(batch["image"], batch.pop("view"))
        return batch


class VisibleProjector(nn.Module):
    """The visible branch's head (the reference's ``proj_embed`` then ``predictor``): three linear layers with
    LayerNorm (the last without affine parameters) and GELU between them, then a linear map to the targets.

    Args:
        in_dim: width of the encoder's tokens.
        dim: hidden width (the decoder's, as the reference).
        out_dim: target values per patch.

    Shapes:
        - input: ``(..., in_dim)``
        - output: ``(..., out_dim)``
    """

    def __init__(self, in_dim: int, dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(
            nn.Linear(in_dim, dim), nn.LayerNorm(dim, eps=1e-6), nn.GELU(),
            nn.Linear(dim, dim), nn.LayerNorm(dim, eps=1e-6), nn.GELU(),
            nn.Linear(dim, dim), nn.LayerNorm(dim, eps=1e-6, elementwise_affine=False),
        )  # fmt: skip
        self.predictor = nn.Linear(dim, out_dim)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.proj(x))


def visible_distillation_loss(pred: torch.Tensor, target: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    """The visible branch's loss: smooth L1 (threshold ``beta``) averaged over every visible token and value.

    Args:
        pred: predictions of the visible tokens.
        target: their targets.
        beta: where the loss turns from quadratic (``0.5 x^2 / beta``) to linear (``|x| - 0.5 beta``).

    Shapes:
        - pred, target: ``(B, L_keep, P)``
        - output: scalar
    """
    if pred.shape != target.shape:
        raise ValueError(f"predictions {tuple(pred.shape)} and targets {tuple(target.shape)} differ in shape")
    return F.smooth_l1_loss(pred, target, beta=beta)


def dmjd_loss(
    pred: torch.Tensor,
    vis_pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    ids_keep: torch.Tensor,
    vis_weight: float = 1.0,
    vis_beta: float = 2.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DMJD's objective on stacked views (the reference's ``forward_loss``): L2 on the masked patches of every
    view plus ``vis_weight`` times the smooth-L1 of the visible patches' predictions.

    Args:
        pred: the decoder's predictions for every patch of every view.
        vis_pred: the visible branch's predictions, in ``ids_keep`` order.
        target: the targets of every patch (each view's rows hold its image's targets).
        mask: True on masked patches.
        ids_keep: the visible patches of each row.
        vis_weight: ``theta``.
        vis_beta: smooth-L1 threshold.

    Shapes:
        - pred, target: ``(N, L, P)`` with ``N = V * B``
        - vis_pred: ``(N, L_keep, P)``
        - mask: ``(N, L)``; ids_keep: ``(N, L_keep)``
        - output: ``(loss, loss_mim, loss_vis)``, scalars
    """
    loss_mim = masked_mse(pred, target, mask)
    vis_target = target.gather(1, ids_keep[..., None].expand(-1, -1, target.shape[-1]))
    loss_vis = visible_distillation_loss(vis_pred, vis_target, vis_beta)
    return loss_mim + vis_weight * loss_vis, loss_mim, loss_vis


def _normalize_patches(target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """MAE's ``norm_pix_loss``: each patch to zero mean and unit (unbiased) variance."""
    mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
    return (target - mean) / (var + eps) ** 0.5


class DMJD(Method):
    """DMJD: disjoint masked views, a masked-reconstruction branch and a visible-distillation branch.

    Shapes:
        - batch: ``{"image": (B, C, H, W), "mask": (B, V, L), "ids_keep": (B, V, L_keep), "ids_restore": (B, V, L)}``
        - :meth:`embed`: ``(B, C, H, W) -> (B, embed_dim)`` (the encoder on the whole image)
    """

    def __init__(self, config: DMJDConfig, info: ImageInfo) -> None:
        super().__init__()
        c = config
        if c.target not in TARGETS:
            raise ConfigError(f"method.target={c.target!r} is unknown; use one of {', '.join(TARGETS)}")
        if c.n_views < 1:
            raise ConfigError(f"method.n_views={c.n_views}; DMJD needs at least one masked view (the paper: 2)")
        if c.hog_cells_per_patch < 1 or c.hog_orientations < 1:
            raise ConfigError(
                "method.hog_cells_per_patch and method.hog_orientations must be at least 1, "
                f"got {c.hog_cells_per_patch} and {c.hog_orientations}"
            )
        if c.decoder_dim % c.decoder_heads:
            raise ConfigError(
                f"method.decoder_dim={c.decoder_dim} is not a multiple of method.decoder_heads={c.decoder_heads}"
            )
        if not 0.0 < c.mask_ratio < 1.0:
            raise ConfigError(f"method.mask_ratio={c.mask_ratio} must lie in (0, 1)")
        self.config, self.info = config, info
        self.backbone = build_vit_for(c.backbone, info)
        vit = self.backbone
        if int(vit.num_patches * (1 - c.mask_ratio)) < 1:
            raise ConfigError(f"method.mask_ratio={c.mask_ratio} leaves no visible patch of {vit.num_patches}")
        p = vit.config.patch_size
        self.target_dim = (
            hog_target_dim(info.channels, c.hog_cells_per_patch, c.hog_orientations)
            if c.target == "hog"
            else p * p * info.channels
        )
        self.decoder = MaskedDecoder(
            vit.embed_dim, c.decoder_dim, c.decoder_depth, c.decoder_heads, vit.grid, self.target_dim
        )
        self.visible_head = VisibleProjector(vit.embed_dim, c.decoder_dim, self.target_dim)
        self.register_buffer("pixel_mean", torch.tensor(info.mean, dtype=torch.float32).view(1, -1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(info.std, dtype=torch.float32).view(1, -1, 1, 1), False)

    def pretext(self) -> DisjointMaskedViews:
        c = self.config
        return DisjointMaskedViews(View(c.view, self.info), self.backbone.num_patches, c.mask_ratio, c.n_views)

    def targets(self, images: torch.Tensor) -> torch.Tensor:
        """The targets of every patch: ``(B, C, H, W)`` normalised images -> ``(B, L, P)``.

        HOG is computed on the grey levels 0-255 (the normalisation undone), as the reference's targets."""
        c, p = self.config, self.backbone.config.patch_size
        if c.target == "hog":
            grey = (images.float() * self.pixel_std + self.pixel_mean) * 255.0
            return hog_patch_targets(grey, p, c.hog_cells_per_patch, c.hog_orientations)
        target = patchify(images, p)
        return _normalize_patches(target) if c.norm_pix_loss else target

    def forward_encoder(self, images: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
        """Encode the visible patches of every view: ``(B, C, H, W), (V * B, L_keep) -> (V * B, 1 + L_keep, D)``,
        the views stacked view-major (rows ``v * B + b``)."""
        tokens = self.backbone.patch_embed(images) + self.backbone.pos_embed  # (B, L, D)
        tokens = tokens.repeat(len(ids_keep) // len(images), 1, 1)  # (V * B, L, D)
        visible = tokens.gather(1, ids_keep[..., None].expand(-1, -1, tokens.shape[-1]))
        return self.backbone.encode(visible)

    def forward(self, batch: dict[str, torch.Tensor]) -> MethodOutput:
        images = batch["image"]
        views = batch["mask"].shape[1]

        def stack(x: torch.Tensor) -> torch.Tensor:  # (B, V, ...) -> (V * B, ...), view-major
            return x.transpose(0, 1).reshape(-1, *x.shape[2:])

        mask, ids_keep, ids_restore = stack(batch["mask"]), stack(batch["ids_keep"]), stack(batch["ids_restore"])
        latent = self.forward_encoder(images, ids_keep)  # (V * B, 1 + L_keep, D)
        pred = self.decoder(latent, ids_restore)  # (V * B, L, P)
        vis_pred = self.visible_head(latent[:, 1:])  # (V * B, L_keep, P)
        with torch.no_grad():
            target = self.targets(images).repeat(views, 1, 1)  # (V * B, L, P)
        c = self.config
        loss, loss_mim, loss_vis = dmjd_loss(pred, vis_pred, target, mask, ids_keep, c.vis_weight, c.vis_beta)
        return MethodOutput(loss, {"loss_mim": loss_mim.detach(), "loss_vis": loss_vis.detach()})

    def backbone_spec(self) -> BackboneSpec:
        return backbone_spec(self.backbone, self.info)

"""Point-MAE (Pang et al., 2022, "Masked Autoencoders for Point Cloud Self-supervised Learning").

The cloud is cut into groups (64 farthest-point-sampled centres, each with its 32 nearest points, expressed
relative to the centre; :func:`~ssl_pointcloud.models.tokens.group_points`), 60% of the groups of every cloud
are masked at random (Point-MAE's ``rand`` mask), and the encoder
(:class:`~ssl_pointcloud.models.transformer.PointTransformer`) embeds and encodes the visible groups only:
the mini-PointNet never sees a masked group, so not even its BatchNorm statistics carry information about
them. A light decoder (:class:`~ssl_pointcloud.methods.common.MaskedGroupDecoder`) takes the encoded visible
tokens plus a shared learned mask token at every masked group, with the position embedding of every centre
added before each block (the decoder's own position MLP, as Point-MAE's ``decoder_pos_embed``), and a linear
head predicts the ``K`` points of each masked group (relative to its centre, which the decoder is given).
The loss is Point-MAE's ``ChamferDistanceL2``: the squared-L2 Chamfer distance between predicted and true
points of each masked group, averaged over the masked groups
(:func:`ssl_core.kernels.chamfer_distance`, no ``B x M x N`` distance matrix).

Randomness: the pretext draws, per sample, Point-MAE's pretraining augmentation (an anisotropic scale in
``[2/3, 3/2]`` per axis and a translation in ``[-0.2, 0.2]`` per axis) and the group mask, both from torch's
global generator, which the trainer seeds per sample (a resumed run sees the same masks).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ssl_core.errors import ConfigError
from ssl_core.kernels import chamfer_distance
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_pointcloud.info import PointInfo
from ssl_pointcloud.methods.common import MaskedGroupDecoder, num_masked_groups, random_group_mask, split_groups
from ssl_pointcloud.models.transformer import PointTransformer, PointTransformerConfig, backbone_spec, position_mlp

# The Chamfer search over the masked groups: many tiny clouds (B x 38 groups of 32 points). The "auto" choice on CPU,
# a scipy KD-tree per cloud, builds 1,216 trees per direction at batch 32: 91 ms vs 70 ms chunked for forward +
# backward at 1 thread, and 843 ms vs 116 ms at 2 threads on a loaded 2-core machine (/tmp timing, Dec 2026).
CHAMFER_IMPL = "chunked"


@dataclass
class PointMAEConfig:
    """Point-MAE settings (``--set method.<name>=<value>``).

    Args:
        backbone: the encoder (64 groups of 32 points; width, depth, heads: see
            :class:`~ssl_pointcloud.models.transformer.PointTransformerConfig`).
        decoder_depth: decoder blocks (Point-MAE: 4), at the encoder's width.
        decoder_heads: decoder attention heads (Point-MAE: 6).
        mask_ratio: share of masked groups per cloud (Point-MAE: 0.6; ``int(ratio * G)`` groups).
        scale: range of the per-axis random scale of the pretraining augmentation (Point-MAE: 2/3 to 3/2).
        translate: per-axis random translation in ``[-translate, translate]`` (Point-MAE: 0.2).
    """

    backbone: PointTransformerConfig = field(default_factory=PointTransformerConfig)
    decoder_depth: int = 2
    decoder_heads: int = 4
    mask_ratio: float = 0.6
    scale: tuple[float, float] = (2.0 / 3.0, 1.5)
    translate: float = 0.2

    def __post_init__(self) -> None:
        if isinstance(self.backbone, dict):
            self.backbone = PointTransformerConfig(**self.backbone)
        self.scale = tuple(self.scale)
        if self.decoder_depth < 1 or self.decoder_heads < 1:
            raise ConfigError(
                f"decoder_depth and decoder_heads must be >= 1, got {self.decoder_depth}, {self.decoder_heads}"
            )
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1]:
            raise ConfigError(f"scale must be (low, high) with 0 < low <= high, got {self.scale}")
        if self.translate < 0:
            raise ConfigError(f"translate must be >= 0, got {self.translate}")
        num_masked_groups(self.backbone.num_groups, self.mask_ratio)  # validates the ratio


class MaskedCloud:
    """Point-MAE's pretext: ``(N, 3)`` cloud -> ``{"points": (N, 3) scaled and translated, "mask": (G,) bool}``.

    Args:
        num_groups: groups per cloud (the mask's length).
        mask_ratio: share of masked groups.
        scale: per-axis scale range.
        translate: per-axis translation range ``[-translate, translate]``.
    """

    def __init__(self, num_groups: int, mask_ratio: float, scale: tuple[float, float], translate: float) -> None:
        self.num_groups, self.mask_ratio = num_groups, mask_ratio
        self.scale, self.translate = scale, translate

    def __call__(self, points: torch.Tensor) -> dict[str, torch.Tensor]:
        """Augment one ``(N, 3)`` cloud and draw its group mask."""
        if points.ndim != 2 or points.shape[1] != 3:
            raise ValueError(f"a sample must be one (N, 3) cloud, got shape {tuple(points.shape)}")
        low, high = self.scale
        s = torch.empty(3).uniform_(low, high)
        t = torch.empty(3).uniform_(-self.translate, self.translate)
        mask = random_group_mask(1, self.num_groups, self.mask_ratio)[0]
        return {"points": (points.float() * s + t), "mask": mask}


class PointMAE(Method):
    """Point-MAE: encoder on the visible groups, mask-token decoder, Chamfer L2 on the masked groups.

    Shapes:
        - batch: ``{"points": (B, N, 3), "mask": (B, G) bool}`` (see :class:`MaskedCloud`)
        - :meth:`embed`: ``(B, N, 3) -> (B, 2 * width)`` (every group encoded, max and mean pooled)
    """

    def __init__(self, config: PointMAEConfig, info: PointInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        b = config.backbone
        if info.num_points < max(b.num_groups, b.group_size):
            raise ConfigError(
                f"clouds of {info.num_points} points cannot make {b.num_groups} groups of {b.group_size} points; "
                "load more points (data.num_points) or lower method.backbone.num_groups / group_size"
            )
        self.backbone = PointTransformer(b)
        width = self.backbone.width
        self.decoder_pos = position_mlp(width)
        self.decoder = MaskedGroupDecoder(width, config.decoder_depth, config.decoder_heads, b.mlp_ratio)
        self.head = nn.Linear(width, 3 * b.group_size)
        for m in [*self.decoder_pos.modules(), self.head]:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def pretext(self) -> MaskedCloud:
        """Point-MAE's augmentation and the group mask, per sample (:class:`MaskedCloud`)."""
        c = self.config
        return MaskedCloud(c.backbone.num_groups, c.mask_ratio, c.scale, c.translate)

    def encode_visible(
        self, neighbourhoods: torch.Tensor, centres: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode the visible groups only.

        Shapes:
            - neighbourhoods: ``(B, G, K, 3)``; centres: ``(B, G, 3)``; mask: ``(B, G)`` bool (True: masked)
            - output: encoded visible tokens ``(B, V, width)`` and visible centres ``(B, V, 3)``, in group order
        """
        vis_groups, _ = split_groups(neighbourhoods, mask)
        vis_centres, _ = split_groups(centres, mask)
        return self.backbone.encode(*self.backbone.embed_groups(vis_groups, vis_centres)), vis_centres

    def predict(self, points: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder's reconstruction of the masked groups, and the true groups.

        Shapes:
            - points: ``(B, N, 3)``; mask: ``(B, G)`` bool
            - output: predicted and true masked groups, both ``(B, M, K, 3)`` relative to their centres
        """
        if mask.shape != (points.shape[0], self.config.backbone.num_groups):
            raise ValueError(
                f"mask must be (B, num_groups) = ({points.shape[0]}, {self.config.backbone.num_groups}), "
                f"got {tuple(mask.shape)}"
            )
        centres, neighbourhoods = self.backbone.group(points)
        mask = mask.to(device=points.device, dtype=torch.bool)
        visible, vis_centres = self.encode_visible(neighbourhoods, centres, mask)
        _, masked_centres = split_groups(centres, mask)
        _, target = split_groups(neighbourhoods, mask)
        out = self.decoder(visible, self.decoder_pos(vis_centres), self.decoder_pos(masked_centres))
        pred = self.head(out).reshape(target.shape)
        return pred, target

    def forward(self, batch: dict[str, torch.Tensor]) -> MethodOutput:
        """Chamfer L2 between the predicted and true masked groups, averaged over the masked groups."""
        pred, target = self.predict(batch["points"], batch["mask"])
        b, m, k, _ = target.shape
        loss = chamfer_distance(pred.reshape(b * m, k, 3), target.reshape(b * m, k, 3), CHAMFER_IMPL).mean()
        return MethodOutput(loss, {"mask_ratio": batch["mask"].float().mean().detach()})

    def backbone_spec(self) -> BackboneSpec:
        """The encoder's spec (``point_transformer`` and its config)."""
        return backbone_spec(self.backbone, self.info)

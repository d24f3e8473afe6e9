"""MoCo v2 on pathology tiles with HED stain augmentation (seed paper 13: self-supervised learning for
histopathology with domain-specific augmentations; stain jitter of Tellez et al., 2018/2019).

The method is MoCo v2 as ssl-vision's :class:`~ssl_vision.methods.moco_v2.MoCoV2` builds it from the same parts
(query encoder, momentum key encoder ``ssl_core.teacher.EMATeacher``, queue of negative keys
``ssl_core.teacher.FeatureQueue``, ``ssl_core.losses.info_nce``; ssl-vision's ResNet and projection head; no
method module imports another, so the few lines that put them together are written here); what this module adds
is the pathology view: every view of a tile gets its own stain jitter in HED space
(:class:`~ssl_medical.transforms.stain.HEDJitter`), then ssl-vision's view augmentations (random resized crop,
horizontal flip, colour jitter without hue, grayscale, as ``method.views`` sets them), then a random rotation
by a multiple of 90 degrees (tissue has no up: flips and rotations give the 8 symmetries of the square).

Why MoCo v2 rather than DINO: both are used for pathology SSL (MoCo v2 in Kang et al., 2023, "Benchmarking
self-supervised learning on diverse pathology datasets"; DINO in several pathology foundation models), and both
exist in ssl-vision; MoCo v2 needs two views of the tile per step, DINO's multi-crop eight (2 global + 6 local),
so on the two CPU cores of a default run MoCo v2 sees about three times more tiles in the same minutes.

The backbone takes tiles as the data gives them (``(B, 3, S, S)`` RGB in ``[0, 1]``, no normalisation): the
views are scaled to ``[0, 1]`` with mean 0 and standard deviation 1, so :meth:`embed` needs no preprocessing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from ssl_core.errors import ConfigError
from ssl_core.losses import info_nce
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_core.teacher import EMATeacher, FeatureQueue
from ssl_medical.info import TileInfo
from ssl_medical.transforms.stain import HEDJitter
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.common import build_backbone
from ssl_vision.models.heads import projection_mlp
from ssl_vision.models.resnet import ResNetConfig
from ssl_vision.transforms.views import View, ViewConfig


def tile_resnet() -> ResNetConfig:
    """The default tile backbone: ssl-vision's ResNet with 4 stages of one block, widths 16-32-64-128 (0.31 M
    parameters), the ImageNet stem (7x7 stride-2 convolution and a max-pool: 64-px tiles -> 16-px maps, 2x2 at
    the last stage) and global average pooling (128-d; pooling that does not change under the rotations the
    views draw, unlike ``ResNetConfig.slim()``'s 2x2 grid). The stem makes a MoCo step several times cheaper
    than the small-image stem of stride 2 (batch 128 on the shared 2 cores: 0.4-1.1 s against 5-7 s), which a
    3-minute CPU run needs at 64 pixels."""
    return ResNetConfig(width=16, small_stem=False, pool="avg", in_channels=3)


def tile_views() -> ViewConfig:
    """ssl-vision's SimCLR-style view with crops of 40-100% of the tile (DINO's global crops; the 20-100% of
    SimCLR's small-image setting scored kNN 35.6% / linear 42.6% on the IHC probe after 177 steps, against 43.4% /
    59.0% after 340 steps together with the smaller queue) and without hue jitter: colour changes come from
    the stain jitter, which moves hue along the stains' directions (hue rotation would also cost half of the
    view's CPU time)."""
    return ViewConfig(crop_scale=[0.4, 1.0], hue=0.0)


@dataclass
class PathologyMoCoConfig:
    """MoCo v2 on tiles with HED stain jitter (``--set method.<name>=<value>``).

    Args:
        backbone: ssl-vision's ResNet (:func:`tile_resnet`).
        proj_hidden_dim: hidden width of MoCo v2's MLP head.
        proj_dim: key / query size.
        temperature: InfoNCE temperature (0.2, MoCo v2's).
        queue_size: negative keys.
        views: ssl-vision's view augmentations (:func:`tile_views`).
        gather_distributed: queue the keys of every process.
        stain_sigma: HED jitter scale half-width, ``alpha ~ U(1 - sigma, 1 + sigma)`` per stain and view
            (0 with ``stain_bias=0``: no stain jitter).
        stain_bias: HED jitter shift half-width, ``beta ~ U(-bias, bias)`` (scikit-image's stain units).
        rot90: rotate each view by a random multiple of 90 degrees.
    The backbone defaults to :func:`tile_resnet`, ``views`` to :func:`tile_views`, and the queue holds 1,024 keys
    (a 3-minute run takes a few hundred steps of 128 tiles: fresher negatives than 4,096).
    """

    backbone: ResNetConfig = field(default_factory=tile_resnet)
    proj_hidden_dim: int = 512
    proj_dim: int = 128
    temperature: float = 0.2
    queue_size: int = 1024
    views: ViewConfig = field(default_factory=tile_views)
    gather_distributed: bool = True
    stain_sigma: float = 0.05
    stain_bias: float = 0.01
    rot90: bool = True


def image_info(info: TileInfo) -> ImageInfo:
    """The ssl-vision description of tiles: 3 channels of ``info.size`` pixels, used in ``[0, 1]``."""
    return ImageInfo(channels=info.channels, image_size=info.size, mean=[0.0] * 3, std=[1.0] * 3)


class StainViews:
    """Views of a tile for a joint-embedding method: per view an HED stain jitter, then an ssl-vision
    :class:`~ssl_vision.transforms.views.View`, then a random rotation by ``k * 90`` degrees.

    The random parameters are drawn per tile (in data-loader workers, from torch's global generator, as the
    trainer seeds it); the pixels are computed per batch in :meth:`collate`.

    Args:
        views: one ``View`` per output view.
        jitter: the stain jitter (``None``: none).
        rot90: draw a rotation per view.

    Shapes:
        - call: float ``(3, S, S)`` in ``[0, 1]`` (or uint8) -> ``(tile, params)``
        - :meth:`collate`: a list of those -> a tuple of ``V`` float tensors ``(B, 3, s_v, s_v)`` in ``[0, 1]``
    """

    def __init__(self, views: Sequence[View], jitter: HEDJitter | None, rot90: bool = True) -> None:
        self.views, self.jitter, self.rot90 = list(views), jitter, rot90

    def __call__(self, tile: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if tile.dtype == torch.uint8:
            tile = tile.float() / 255
        if tile.ndim != 3 or tile.shape[0] != 3:
            raise ValueError(f"pathology views take (3, H, W) RGB tiles, got shape {tuple(tile.shape)}")
        n = len(self.views)
        params = {"view": torch.tensor([v.draw(tile) for v in self.views], dtype=torch.float32)}
        if self.jitter is not None:
            alpha, beta = self.jitter.draw(n)
            params["alpha"], params["beta"] = alpha.float(), beta.float()
        params["rot"] = torch.randint(0, 4, (n,)) if self.rot90 else torch.zeros(n, dtype=torch.long)
        return tile, params

    def collate(self, items: Sequence[tuple[torch.Tensor, dict[str, torch.Tensor]]]) -> tuple[torch.Tensor, ...]:
        """Render the views of a batch of drawn items."""
        tiles = torch.stack([t for t, _ in items]).float()
        p = {k: torch.stack([q[k] for _, q in items]) for k in items[0][1]}  # (B, V, ...)
        out = []
        for i, view in enumerate(self.views):
            x = tiles if self.jitter is None else HEDJitter.apply(tiles, p["alpha"][:, i], p["beta"][:, i])
            x = view.render(x.mul(255).round_().clamp_(0, 255).to(torch.uint8), p["view"][:, i])
            rot = p["rot"][:, i]
            for k in rot.unique().tolist():
                if k:
                    sel = rot == k
                    x[sel] = torch.rot90(x[sel], k, dims=(2, 3))
            out.append(x)
        return tuple(out)


class PathologyMoCo(Method):
    """MoCo v2 on pathology tiles, with :class:`StainViews` as its pretext.

    Shapes:
        - batch: ``(x_query, x_key)``, two ``(B, 3, S, S)`` views in ``[0, 1]``
        - :meth:`embed`: ``(B, 3, S, S)`` tiles in ``[0, 1]`` -> ``(B, embed_dim)``
    """

    def __init__(self, config: PathologyMoCoConfig, info: TileInfo) -> None:
        if not isinstance(info, TileInfo):
            raise ConfigError(
                f"the pathology method trains on tiles (TileInfo), got {type(info).__name__}: use "
                "--data pathology or a folder of PNG/JPG/TIFF tiles"
            )
        if not (0 <= config.stain_sigma < 1 and config.stain_bias >= 0):
            raise ConfigError(
                f"method.stain_sigma must lie in [0, 1) and method.stain_bias be >= 0, got {config.stain_sigma}, "
                f"{config.stain_bias}"
            )
        config = dataclasses.replace(config, backbone=dataclasses.replace(config.backbone, in_channels=3))
        super().__init__()
        self.config, self.info, self.tile_info = config, image_info(info), info
        self.backbone = build_backbone(config.backbone, self.info, None)
        self.projector = projection_mlp(  # MoCo v2's head: fc -> ReLU -> fc, no BatchNorm
            self.backbone.embed_dim, config.proj_hidden_dim, config.proj_dim, batch_norm=False
        )
        self.key_encoder = EMATeacher({"backbone": self.backbone, "projector": self.projector})
        self.queue = FeatureQueue(config.queue_size, config.proj_dim)

    def pretext(self) -> StainViews:
        c = self.config
        jitter = HEDJitter(c.stain_sigma, c.stain_bias) if (c.stain_sigma or c.stain_bias) else None
        view = View(c.views, self.info)
        return StainViews([view, view], jitter, c.rot90)

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> MethodOutput:
        """InfoNCE of the queries against their keys and the queue; the keys are queued after use."""
        x_q, x_k = batch
        q = self.projector(self.backbone(x_q))
        with torch.no_grad():
            k = self.key_encoder.module["projector"](self.key_encoder.module["backbone"](x_k))
        negatives = self.queue.features.to(q.dtype) if len(self.queue) else None  # none before the first keys
        loss = info_nce(q, k, negatives, temperature=self.config.temperature)
        self.queue.enqueue(k, gather_distributed=self.config.gather_distributed)
        return MethodOutput(loss, {})

    def after_optimizer_step(self, step: int, values: Mapping[str, float]) -> None:
        """The momentum update of the key encoder (the trainer's ``train.ema_momentum`` schedule)."""
        self.key_encoder.update({"backbone": self.backbone, "projector": self.projector}, values["ema_momentum"])

    def backbone_spec(self) -> BackboneSpec:
        return BackboneSpec(
            name="resnet",
            config=dataclasses.asdict(self.backbone.config),
            embed_dim=self.backbone.embed_dim,
            input=self.tile_info.backbone_input(),
        )

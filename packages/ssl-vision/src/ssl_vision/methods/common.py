"""Pieces every image method shares: its backbone for the data, its export spec, and its views."""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from ssl_core.errors import ConfigError
from ssl_core.method import BackboneSpec
from ssl_vision.data.images import ImageInfo
from ssl_vision.models.resnet import ResNet, ResNetConfig
from ssl_vision.models.rope import RoPEViT, RoPEViTConfig
from ssl_vision.models.vit import ViT, ViTConfig


def build_backbone(config: ResNetConfig, info: ImageInfo, vit: ViTConfig | None = None) -> ResNet | ViT:
    """The method's backbone for these images: the ResNet of ``config``, or the ViT of ``vit`` when it is set
    (``--set method.vit={}`` selects ViT-tiny). Input channels and size follow the data unless the
    configuration fixes them, and then they must agree."""
    if vit is not None:
        return build_vit_for(vit, info)
    if config.in_channels is not None and config.in_channels != info.channels:
        raise ConfigError(
            f"method.backbone.in_channels={config.in_channels}, but the images have {info.channels} channels"
        )
    return ResNet(dataclasses.replace(config, in_channels=info.channels))


def build_vit_for(config: ViTConfig, info: ImageInfo) -> ViT | RoPEViT:
    """A ViT for these images (see :func:`build_backbone`): a :class:`~ssl_vision.models.rope.RoPEViT` for a
    :class:`~ssl_vision.models.rope.RoPEViTConfig`, else a :class:`ViT`."""
    for key, have in (("in_channels", info.channels), ("image_size", info.image_size)):
        want = getattr(config, key)
        if want is not None and want != have:
            raise ConfigError(f"the ViT's {key}={want}, but the images have {have}")
    cls = RoPEViT if isinstance(config, RoPEViTConfig) else ViT
    return cls(dataclasses.replace(config, in_channels=info.channels, image_size=info.image_size))


def backbone_spec(backbone: ResNet | ViT | RoPEViT, info: ImageInfo) -> BackboneSpec:
    """The export description of a backbone and of the inputs it expects."""
    names = {ViT: "vit", RoPEViT: "vit_rope", ResNet: "resnet"}
    return BackboneSpec(
        name=names[type(backbone)],
        config=dataclasses.asdict(backbone.config),
        embed_dim=backbone.embed_dim,
        input={
            "channels": info.channels,
            "image_size": info.image_size,
            "mean": info.mean,
            "std": info.std,
            "layout": "float (B, C, H, W), scaled to [0, 1] then normalised with mean/std",
        },
    )


def build_resnet(config: dict[str, Any]) -> nn.Module:
    """Registry builder: a ResNet from the ``config`` dict of an export."""
    return ResNet(ResNetConfig(**config))


def build_vit(config: dict[str, Any]) -> nn.Module:
    """Registry builder: a ViT from the ``config`` dict of an export."""
    return ViT(ViTConfig(**config))

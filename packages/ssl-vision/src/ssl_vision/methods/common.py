"""Pieces every image method shares: building its backbone for the data, and its export spec."""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from ssl_core.errors import ConfigError
from ssl_core.method import BackboneSpec
from ssl_vision.data.images import ImageInfo
from ssl_vision.models.resnet import ResNet, ResNetConfig


def build_backbone(config: ResNetConfig, info: ImageInfo) -> ResNet:
    """A ResNet whose input channels follow the data unless the configuration fixes them (and agrees)."""
    if config.in_channels is not None and config.in_channels != info.channels:
        raise ConfigError(
            f"method.backbone.in_channels={config.in_channels}, but the images have {info.channels} channels"
        )
    return ResNet(dataclasses.replace(config, in_channels=info.channels))


def resnet_spec(backbone: ResNet, info: ImageInfo) -> BackboneSpec:
    """The export description of a ResNet backbone and of the inputs it expects."""
    return BackboneSpec(
        name="resnet",
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

"""Backbones and heads."""

from ssl_vision.models.heads import projection_mlp
from ssl_vision.models.resnet import ResNet, ResNetConfig

__all__ = ["ResNet", "ResNetConfig", "projection_mlp"]

"""Backbones and heads."""

from ssl_vision.models.decoder import MaskedDecoder
from ssl_vision.models.heads import DINOHead, projection_mlp
from ssl_vision.models.resnet import ResNet, ResNetConfig
from ssl_vision.models.rope import RoPEViT, RoPEViTConfig
from ssl_vision.models.vit import ViT, ViTConfig

__all__ = [
    "DINOHead",
    "MaskedDecoder",
    "ResNet",
    "ResNetConfig",
    "RoPEViT",
    "RoPEViTConfig",
    "ViT",
    "ViTConfig",
    "projection_mlp",
]

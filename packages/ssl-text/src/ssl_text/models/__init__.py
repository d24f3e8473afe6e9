"""Text backbones built from transformers configs."""

from ssl_text.models.backbones import TextBackboneConfig, TextEncoder, build_text_encoder, mean_pool

__all__ = ["TextBackboneConfig", "TextEncoder", "build_text_encoder", "mean_pool"]

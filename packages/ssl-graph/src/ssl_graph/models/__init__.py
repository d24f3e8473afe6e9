"""GNN encoders and heads."""

from ssl_graph.models.encoder import EncoderConfig, GraphEncoder, build_encoder

__all__ = ["EncoderConfig", "GraphEncoder", "build_encoder"]

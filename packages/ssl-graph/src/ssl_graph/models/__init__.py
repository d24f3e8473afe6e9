"""GNN encoders and the transformer over serialised graphs."""

from ssl_graph.models.encoder import EncoderConfig, GraphEncoder, build_encoder
from ssl_graph.models.graph_transformer import GraphTransformer, GraphTransformerConfig, build_graph_transformer
from ssl_graph.models.seconv import SEConvConfig, SEConvEncoder, build_seconv

__all__ = [
    "EncoderConfig",
    "GraphEncoder",
    "GraphTransformer",
    "GraphTransformerConfig",
    "SEConvConfig",
    "SEConvEncoder",
    "build_encoder",
    "build_graph_transformer",
    "build_seconv",
]

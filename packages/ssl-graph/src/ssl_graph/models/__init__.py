"""GNN encoders and the transformer over serialised graphs."""

from ssl_graph.models.encoder import EncoderConfig, GraphEncoder, build_encoder
from ssl_graph.models.graph_transformer import GraphTransformer, GraphTransformerConfig, build_graph_transformer

__all__ = [
    "EncoderConfig",
    "GraphEncoder",
    "GraphTransformer",
    "GraphTransformerConfig",
    "build_encoder",
    "build_graph_transformer",
]

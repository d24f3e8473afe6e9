"""GNN encoders, the transformer over serialised graphs, and the heads several methods share."""

from ssl_graph.models.encoder import EncoderConfig, GraphEncoder, build_encoder
from ssl_graph.models.graph_transformer import GraphTransformer, GraphTransformerConfig, build_graph_transformer
from ssl_graph.models.heads import (
    MaskedFeatureConfig,
    MaskedFeatureHead,
    link_bce,
    link_prediction_loss,
    mlp_head,
)
from ssl_graph.models.seconv import SEConvConfig, SEConvEncoder, build_seconv

__all__ = [
    "EncoderConfig",
    "GraphEncoder",
    "GraphTransformer",
    "GraphTransformerConfig",
    "MaskedFeatureConfig",
    "MaskedFeatureHead",
    "SEConvConfig",
    "SEConvEncoder",
    "build_encoder",
    "build_graph_transformer",
    "build_seconv",
    "link_bce",
    "link_prediction_loss",
    "mlp_head",
]

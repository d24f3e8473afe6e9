"""Scaffolding every graph method builds on: the encoder for the data and its export spec. Heads live in
:mod:`ssl_graph.models.heads`, masks in :mod:`ssl_graph.pretext`, batching in :mod:`ssl_graph.data.graphs`."""

from __future__ import annotations

from ssl_core.method import BackboneSpec
from ssl_graph.data.graphs import GraphInfo
from ssl_graph.models.encoder import EncoderConfig, GraphEncoder, encoder_export_config


def build_backbone(config: EncoderConfig, info: GraphInfo) -> GraphEncoder:
    """A GNN encoder whose input width follows the data's node features."""
    return GraphEncoder(config, info.num_features)


def gnn_spec(encoder: GraphEncoder, info: GraphInfo) -> BackboneSpec:
    """The export description of a GNN encoder and of the graphs it expects."""
    return BackboneSpec(
        name="gnn",
        config=encoder_export_config(encoder),
        embed_dim=encoder.embed_dim,
        input={
            "level": info.level,
            "num_features": info.num_features,
            "layout": "a torch_geometric Batch with x (N, num_features) float and edge_index (2, E); node-level "
            "inputs (neighbourhoods) also carry center_index, the position of each centre node",
        },
    )

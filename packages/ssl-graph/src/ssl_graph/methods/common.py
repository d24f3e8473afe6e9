"""Pieces graph methods share: the encoder for the data, its export spec, heads and view batching."""

from __future__ import annotations

from torch import nn
from torch_geometric.data import Batch, Data

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


def mlp_head(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """``Linear -> ReLU -> Linear``: the projection head of GraphCL, GRACE and InfoGraph.

    Shapes:
        - input: ``(B, in_dim)``; output: ``(B, out_dim)``
    """
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim))


def collate_views(items: list[tuple[Data, ...]]) -> tuple[Batch, ...]:
    """Batch a list of view tuples into a tuple of batches, one per view."""
    return tuple(Batch.from_data_list(list(views)) for views in zip(*items, strict=True))


def collate_graphs(items: list[Data]) -> Batch:
    """Batch single graphs (methods whose pretext returns one graph)."""
    return Batch.from_data_list(items)


def unchanged(data: Data) -> Data:
    """The pretext of methods that corrupt inside the forward pass: the training item is the graph itself."""
    return data

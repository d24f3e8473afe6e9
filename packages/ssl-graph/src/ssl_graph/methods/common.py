"""Scaffolding every graph method builds on: the encoder for the data, its export spec, and the base classes of
the GNN methods (:class:`GNNMethod`: one graph per item; :class:`TwoViewGNNMethod`: two augmented views). Heads
live in :mod:`ssl_graph.models.heads`, masks in :mod:`ssl_graph.pretext`, batching in :mod:`ssl_graph.data.graphs`."""

from __future__ import annotations

from ssl_core.method import BackboneSpec, Method
from ssl_graph.data.graphs import GraphInfo, collate_graphs, collate_views
from ssl_graph.models.encoder import EncoderConfig, GraphEncoder, encoder_export_config
from ssl_graph.transforms.augment import GraphViews, Identity, build_augment


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


class GNNMethod(Method):
    """Base of the graph methods whose backbone is a :class:`GraphEncoder` (``config.encoder``) over the data's
    node features: it keeps ``config`` and ``info``, builds the encoder and describes it for export.

    The default pretext hands each graph on unchanged (:class:`~ssl_graph.transforms.augment.Identity`) and
    batches graphs with :func:`~ssl_graph.data.graphs.collate_graphs`: the setting of methods that corrupt the
    batch in their forward pass (DGI, GraphMAE, link prediction, InfoGraph). Subclasses build their heads after
    ``super().__init__`` and implement ``forward``.

    Shapes:
        - batch: a PyG batch of graphs (or node neighbourhoods)
        - :meth:`embed`: a batch of ``B`` graphs -> ``(B, embed_dim)``
    """

    def __init__(self, config, info: GraphInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        self.backbone = build_backbone(config.encoder, info)

    def pretext(self):
        return Identity()

    def collate(self):
        return collate_graphs

    def backbone_spec(self) -> BackboneSpec:
        return gnn_spec(self.backbone, self.info)


class TwoViewGNNMethod(GNNMethod):
    """Base of the GNN methods trained on two augmented views of each graph (GraphCL, GRACE, BGRL): the pretext
    applies ``config.view1`` and ``config.view2`` to the same graph, and the views are batched apart.

    Shapes:
        - batch: ``(b1, b2)``, two PyG batches of the same ``B`` graphs, one per view
        - :meth:`embed`: a batch of ``B`` graphs -> ``(B, embed_dim)``
    """

    def pretext(self) -> GraphViews:
        return GraphViews([build_augment(self.config.view1), build_augment(self.config.view2)])

    def collate(self):
        return collate_views

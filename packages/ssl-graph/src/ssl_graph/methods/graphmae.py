"""GraphMAE (Hou et al., 2022, "GraphMAE: Self-Supervised Masked Graph Autoencoders").

Section 3 of the paper: mask a random ``mask_rate`` of the nodes, replacing their features by a learnable
``[MASK]`` token (a ``replace_rate`` share of them instead by the features of random nodes), encode the
corrupted graph, project to the decoder's width, *re-mask* the masked nodes' codes (set them to zero),
decode with a one-layer GNN, and score the reconstruction of the masked nodes' features with the scaled
cosine error (``ssl_core.losses.sce``, eq. 3). The head that does all this,
:class:`~ssl_graph.models.heads.MaskedFeatureHead`, is also ParetoGNN's P-Recon task. As in the authors' code,
the nodes are masked per batch in ``forward`` (:func:`ssl_graph.pretext.masking.mask_nodes`), so replaced
features may come from any graph of the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch_geometric.data import Batch

from ssl_core.method import MethodOutput
from ssl_graph.data.graphs import GraphInfo
from ssl_graph.methods.common import GNNMethod
from ssl_graph.models.encoder import EncoderConfig
from ssl_graph.models.heads import MaskedFeatureConfig, MaskedFeatureHead


@dataclass
class GraphMAEConfig(MaskedFeatureConfig):
    """GraphMAE settings (``--set method.<name>=<value>``).

    Args:
        encoder: the GNN (the paper's MUTAG setting: GIN, 5 layers of 32, sum readout).
        mask_rate: share of nodes masked (MUTAG: 0.75).
        replace_rate: share of the masked nodes given a random node's features instead of ``[MASK]`` (0.1).
        alpha: exponent of the scaled cosine error (MUTAG: 2).

    The last three are :class:`~ssl_graph.models.heads.MaskedFeatureConfig`'s, which the head reads.
    """

    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(num_layers=5, jk="last"))


class GraphMAE(GNNMethod):
    """GraphMAE: masked node-feature reconstruction with re-masking and the scaled cosine error.

    Shapes:
        - batch: a PyG batch of graphs (or node neighbourhoods)
        - :meth:`embed`: a batch of ``B`` graphs -> ``(B, embed_dim)``
    """

    def __init__(self, config: GraphMAEConfig, info: GraphInfo) -> None:
        super().__init__(config, info)
        self.head = MaskedFeatureHead(self.backbone.node_dim, config.encoder.hidden_dim, info.num_features, config)

    def forward(self, batch: Batch) -> MethodOutput:
        return MethodOutput(self.head(self.backbone, batch.x, batch.edge_index), {})

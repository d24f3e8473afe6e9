"""Deep Graph Infomax (Velickovic et al., 2019, "Deep Graph Infomax").

Algorithm of section 3.4: corrupt the graph by shuffling node features across nodes (structure kept),
encode the real and the corrupted graph with the same GNN, summarise the real graph as
``s = sigmoid(mean of its node embeddings)``, and train a bilinear discriminator ``D(h, s) = h^T W s``
to tell real nodes (label 1) from corrupted ones (label 0) with binary cross entropy (eq. 1). In a batch
of graphs (or of node neighbourhoods) each node is scored against the summary of its own graph, the
setting the paper uses for the multi-graph PPI data. The objective is ``ssl_core.losses.dgi_loss``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.nn import global_mean_pool

from ssl_core.losses import dgi_loss
from ssl_core.method import MethodOutput
from ssl_graph.data.graphs import GraphInfo
from ssl_graph.methods.common import GNNMethod
from ssl_graph.models.encoder import EncoderConfig


@dataclass
class DGIConfig:
    """DGI settings (``--set method.<name>=<value>``).

    Args:
        encoder: the GNN (the paper: one GCN layer of 512 with PReLU, transductive; GraphSAGE-style for
            large graphs).
    """

    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(kind="gcn", num_layers=2, hidden_dim=64))


class DGI(GNNMethod):
    """DGI: local-global discrimination between real and feature-shuffled graphs.

    Shapes:
        - batch: a PyG batch of graphs (or node neighbourhoods)
        - :meth:`embed`: a batch of ``B`` graphs -> ``(B, embed_dim)``
    """

    def __init__(self, config: DGIConfig, info: GraphInfo) -> None:
        super().__init__(config, info)
        d = self.backbone.node_dim
        self.weight = nn.Parameter(torch.empty(d, d))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, batch: Batch) -> MethodOutput:
        perm = torch.randperm(batch.num_nodes, device=batch.x.device)  # the corruption: shuffle features
        h_real = self.backbone.node_embeddings(batch.x, batch.edge_index)  # (N, D)
        h_fake = self.backbone.node_embeddings(batch.x[perm], batch.edge_index)
        summary = torch.sigmoid(global_mean_pool(h_real, batch.batch, batch.num_graphs))  # (B, D)
        loss = dgi_loss(h_real, h_fake, summary, batch.batch, self.weight)
        return MethodOutput(loss, {})

"""Deep Graph Infomax (Velickovic et al., 2019, "Deep Graph Infomax").

Algorithm of section 3.4: corrupt the graph by shuffling node features across nodes (structure kept),
encode the real and the corrupted graph with the same GNN, summarise the real graph as
``s = sigmoid(mean of its node embeddings)``, and train a bilinear discriminator ``D(h, s) = h^T W s``
to tell real nodes (label 1) from corrupted ones (label 0) with binary cross entropy (eq. 1). In a batch
of graphs (or of node neighbourhoods) each node is scored against the summary of its own graph, the
setting the paper uses for the multi-graph PPI data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.nn import global_mean_pool

from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_graph.data.graphs import GraphInfo
from ssl_graph.methods.common import build_backbone, collate_graphs, gnn_spec, unchanged
from ssl_graph.models.encoder import EncoderConfig


def dgi_loss(
    h_real: torch.Tensor, h_fake: torch.Tensor, summary: torch.Tensor, graph_index: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """DGI's objective (eq. 1): mean binary cross entropy of the bilinear discriminator over real and
    corrupted nodes, each scored against the summary of its graph.

    Args:
        h_real: node embeddings of the real graphs.
        h_fake: node embeddings of the corrupted graphs (same nodes, shuffled features).
        summary: one summary vector per graph.
        graph_index: the graph of each node.
        weight: the bilinear form ``W``.

    Shapes:
        - h_real, h_fake: ``(N, D)``, summary: ``(B, D)``, graph_index: ``(N,)``, weight: ``(D, D)``
        - output: scalar
    """
    s = summary[graph_index]  # (N, D): each node's own summary
    pos = ((h_real @ weight) * s).sum(1)
    neg = ((h_fake @ weight) * s).sum(1)
    logits = torch.cat([pos, neg])
    labels = torch.cat([torch.ones_like(pos), torch.zeros_like(neg)])
    return F.binary_cross_entropy_with_logits(logits, labels)


@dataclass
class DGIConfig:
    """DGI settings (``--set method.<name>=<value>``).

    Args:
        encoder: the GNN (the paper: one GCN layer of 512 with PReLU, transductive; GraphSAGE-style for
            large graphs).
    """

    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(kind="gcn", num_layers=2, hidden_dim=64))


class DGI(Method):
    """DGI: local-global discrimination between real and feature-shuffled graphs.

    Shapes:
        - batch: a PyG batch of graphs (or node neighbourhoods)
        - :meth:`embed`: a batch of ``B`` graphs -> ``(B, embed_dim)``
    """

    def __init__(self, config: DGIConfig, info: GraphInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        self.backbone = build_backbone(config.encoder, info)
        d = self.backbone.node_dim
        self.weight = nn.Parameter(torch.empty(d, d))
        nn.init.xavier_uniform_(self.weight)

    def pretext(self):
        return unchanged

    def collate(self):
        return collate_graphs

    def forward(self, batch: Batch) -> MethodOutput:
        perm = torch.randperm(batch.num_nodes, device=batch.x.device)  # the corruption: shuffle features
        h_real = self.backbone.node_embeddings(batch.x, batch.edge_index)  # (N, D)
        h_fake = self.backbone.node_embeddings(batch.x[perm], batch.edge_index)
        summary = torch.sigmoid(global_mean_pool(h_real, batch.batch, batch.num_graphs))  # (B, D)
        loss = dgi_loss(h_real, h_fake, summary, batch.batch, self.weight)
        return MethodOutput(loss, {})

    def backbone_spec(self) -> BackboneSpec:
        return gnn_spec(self.backbone, self.info)

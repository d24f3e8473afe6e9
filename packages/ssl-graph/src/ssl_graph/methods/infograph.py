"""InfoGraph (Sun et al., 2020, "InfoGraph: Unsupervised and Semi-supervised Graph-Level Representation
Learning via Mutual Information Maximization").

Section 3.2: maximise the mutual information between each graph's embedding (the readout of the
GIN's concatenated layers) and the representations of its own nodes ("patches"), against the nodes of
the other graphs of the batch, with the Jensen-Shannon estimator of Deep InfoMax (eq. 4): each pair's
score is the dot product of a local and a global feed-forward projection, and

.. math::
    \\hat I = \\mathbb{E}_{pos}[-\\mathrm{sp}(-T)] - \\mathbb{E}_{neg}[\\mathrm{sp}(T)]

(``sp`` = softplus; the reference code adds constants ``log 2`` that change neither gradient nor optimum).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import Batch

from ssl_core.method import MethodOutput
from ssl_graph.data.graphs import GraphInfo
from ssl_graph.methods.common import GNNMethod
from ssl_graph.models.encoder import EncoderConfig


def local_global_jsd(local: torch.Tensor, global_: torch.Tensor, graph_index: torch.Tensor) -> torch.Tensor:
    """Negative Jensen-Shannon MI estimate between nodes and graph summaries (InfoGraph's loss).

    Node ``i`` and graph ``g`` form a positive pair when ``graph_index[i] == g``, a negative pair otherwise.
    The loss is ``E_neg[sp(T)] - E_pos[-sp(-T)]`` with ``T = local @ global_.T``, each expectation a mean over
    its pairs, ``sp`` the softplus.

    Args:
        local: node projections.
        global_: graph projections.
        graph_index: the graph of each node.

    Shapes:
        - local: ``(N, D)``, global_: ``(B, D)``, graph_index: ``(N,)``
        - output: scalar
    """
    if local.shape[1] != global_.shape[1] or len(local) != len(graph_index):
        raise ValueError(f"expected (N, D), (B, D) and (N,), got {local.shape}, {global_.shape}, {graph_index.shape}")
    if len(global_) < 2:
        raise ValueError("local_global_jsd needs at least two graphs (the other graphs give the negatives)")
    scores = local @ global_.T  # (N, B)
    pos = F.one_hot(graph_index, len(global_)).bool()
    e_pos = -F.softplus(-scores[pos]).mean()
    e_neg = F.softplus(scores[~pos]).mean()
    return e_neg - e_pos


class FF(nn.Module):
    """InfoGraph's discriminator projection: three ReLU layers plus a linear shortcut.

    Shapes:
        - input: ``(N, dim)``; output: ``(N, dim)``
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU()
        )
        self.shortcut = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) + self.shortcut(x)


@dataclass
class InfoGraphConfig:
    """InfoGraph settings (``--set method.<name>=<value>``).

    Args:
        encoder: the GNN (the paper: GIN, 4 layers of 32 in the code's default, layers concatenated, sum readout).
    """

    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(num_layers=4))


class InfoGraph(GNNMethod):
    """InfoGraph: local-global Jensen-Shannon mutual information between nodes and graph embeddings.

    Shapes:
        - batch: a PyG batch of ``B >= 2`` graphs
        - :meth:`embed`: a batch of ``B`` graphs -> ``(B, embed_dim)``
    """

    def __init__(self, config: InfoGraphConfig, info: GraphInfo) -> None:
        super().__init__(config, info)
        self.local_d = FF(self.backbone.node_dim)
        self.global_d = FF(self.backbone.embed_dim)

    def forward(self, batch: Batch) -> MethodOutput:
        h = self.backbone.node_embeddings(batch.x, batch.edge_index)  # (N, node_dim)
        g = self.backbone.readout(h, batch)  # (B, embed_dim)
        # a node's positive is its own graph (for node-level samples: its own neighbourhood's centre)
        loss = local_global_jsd(self.local_d(h), self.global_d(g), batch.batch)
        return MethodOutput(loss, {})

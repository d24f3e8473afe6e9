"""GNN encoders from PyG's convolutions (GIN, GCN, GAT) with a graph-level readout.

- GIN: Xu et al., 2019, "How Powerful are Graph Neural Networks?" (``GINConv`` with a 2-layer MLP);
- GCN: Kipf and Welling, 2017 (``GCNConv``);
- GAT: Velickovic et al., 2018 (``GATConv``, heads concatenated).

Each layer is conv -> batch norm -> ReLU. The node representation is the last layer's output or, with
``jk="cat"``, the concatenation of every layer's output (jumping knowledge, as InfoGraph and GraphCL
read out GIN). A batch is read out per graph by sum, mean or max pooling, or, for node-level samples
(neighbourhoods carrying ``center_index``), by taking the centre node.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.nn import GATConv, GCNConv, GINConv, global_add_pool, global_max_pool, global_mean_pool

from ssl_core.errors import ConfigError

KINDS = ("gin", "gcn", "gat")
READOUTS = {"sum": global_add_pool, "mean": global_mean_pool, "max": global_max_pool}


@dataclass
class EncoderConfig:
    """Shape of a :class:`GraphEncoder` (``--set method.encoder.<name>=<value>``).

    Args:
        kind: ``gin``, ``gcn`` or ``gat``.
        hidden_dim: width of every layer.
        num_layers: message-passing layers.
        jk: ``cat`` (concatenate the layers' outputs) or ``last``.
        readout: graph pooling, ``sum`` (GIN's choice, injective on multisets), ``mean`` or ``max``.
        heads: attention heads of GAT (``hidden_dim`` must be divisible by it).
        dropout: dropout on each layer's output during training.
    """

    kind: str = "gin"
    hidden_dim: int = 32
    num_layers: int = 3
    jk: str = "cat"
    readout: str = "sum"
    heads: int = 4
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"encoder.kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.jk not in ("cat", "last"):
            raise ConfigError(f"encoder.jk must be cat or last, got {self.jk!r}")
        if self.readout not in READOUTS:
            raise ConfigError(f"encoder.readout must be one of {', '.join(READOUTS)}, got {self.readout!r}")
        if self.hidden_dim < 1 or self.num_layers < 1:
            raise ConfigError("encoder.hidden_dim and encoder.num_layers must be positive")
        if self.kind == "gat" and self.hidden_dim % self.heads:
            raise ConfigError(f"encoder.hidden_dim={self.hidden_dim} must be divisible by encoder.heads={self.heads}")


def _conv(kind: str, d_in: int, d_out: int, heads: int) -> nn.Module:
    if kind == "gin":
        mlp = nn.Sequential(nn.Linear(d_in, d_out), nn.BatchNorm1d(d_out), nn.ReLU(), nn.Linear(d_out, d_out))
        return GINConv(mlp, train_eps=False)
    if kind == "gcn":
        return GCNConv(d_in, d_out)
    return GATConv(d_in, d_out // heads, heads=heads)


class GraphEncoder(nn.Module):
    """A stack of PyG convolutions with batch norm, ReLU, jumping knowledge and a readout.

    Args:
        config: the shape (:class:`EncoderConfig`).
        in_dim: node feature width.

    Shapes:
        - :meth:`node_embeddings`: ``x (N, in_dim), edge_index (2, E) -> (N, node_dim)``
        - :meth:`forward`: a PyG ``Batch`` of ``B`` graphs -> ``(B, embed_dim)`` (``embed_dim = node_dim``)
    """

    def __init__(self, config: EncoderConfig, in_dim: int) -> None:
        super().__init__()
        self.config, self.in_dim = config, in_dim
        c = config
        self.convs = nn.ModuleList(
            _conv(c.kind, in_dim if i == 0 else c.hidden_dim, c.hidden_dim, c.heads) for i in range(c.num_layers)
        )
        self.norms = nn.ModuleList(nn.BatchNorm1d(c.hidden_dim) for _ in range(c.num_layers))
        self.node_dim = c.hidden_dim * (c.num_layers if c.jk == "cat" else 1)
        self.embed_dim = self.node_dim

    def layer_outputs(self, x: torch.Tensor, edge_index: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's node representations, ``num_layers`` tensors of ``(N, hidden_dim)``."""
        outs = []
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = torch.relu(norm(conv(x, edge_index)))
            x = nn.functional.dropout(x, self.config.dropout, self.training)
            outs.append(x)
        return outs

    def node_embeddings(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        """Node representations (the layers concatenated with ``jk="cat"``), ``(N, node_dim)``."""
        outs = self.layer_outputs(x, edge_index)
        return torch.cat(outs, dim=1) if self.config.jk == "cat" else outs[-1]

    def readout(self, h: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Per-graph vectors: the centre nodes of neighbourhood samples, else the pooled nodes, ``(B, node_dim)``."""
        center = batch.get("center_index")
        if center is not None:
            return h[center]
        index = batch.batch if batch.get("batch") is not None else torch.zeros(len(h), dtype=torch.long)
        return READOUTS[self.config.readout](h, index, batch.num_graphs if hasattr(batch, "num_graphs") else 1)

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.readout(self.node_embeddings(batch.x, batch.edge_index), batch)


def build_encoder(config: dict[str, Any]) -> GraphEncoder:
    """Registry builder: a :class:`GraphEncoder` from the ``config`` dict of an export."""
    cfg = dict(config)
    in_dim = cfg.pop("in_dim")
    return GraphEncoder(EncoderConfig(**cfg), in_dim)


def encoder_export_config(encoder: GraphEncoder) -> dict[str, Any]:
    """The JSON-serialisable configuration :func:`build_encoder` rebuilds the encoder from."""
    return {**asdict(encoder.config), "in_dim": encoder.in_dim}

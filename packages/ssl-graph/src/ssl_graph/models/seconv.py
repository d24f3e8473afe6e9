"""SEConv, the spatially evolving graph convolution of SEENet (Li et al., 2023, "Multi-Temporal Relationship
Inference in Urban Areas", seed 30).

One SEConv layer turns per-slot node states ``H^t`` into new ones in two steps:

1. intra-time aggregation: ``A^t = ReLU(BN(Conv_intra(H^t, E_t)))``, message passing over slot ``t``'s
   edges only, with weights shared by every slot;
2. inter-time propagation: ``M^t = mean(A^s for s in {t-1, t, t+1})``, the slot's state mixed with its
   neighbouring slots' (cyclically, as the periods of a day, or clipped at the ends of a sequence), then
   ``H'^t = ReLU(BN(Conv_inter(M^t, E_{t-1} + E_t + E_{t+1})))`` spreads it over the union of those slots'
   graphs (the authors' ``DistRelConv`` runs its second convolution over the edges of the same three
   slots), so a node hears in slot ``t`` from whom it is linked with just before and after.

A node's representation in slot ``t`` is its state after each layer, concatenated; a node's embedding (what
probes and exports see) is the concatenation over slots.

Choices of ours where the authors' code differs: the convolutions are PyG's GIN/GCN/GAT (the authors'
``TwoHopConv`` / ``DistPoolConv`` weigh messages by embedded location distances and by relation types,
which generic evolving graphs lack); every slot starts from the node features, where the authors learn
one embedding per location (transductive); neighbouring slots are averaged rather than summed (so the
scale does not depend on the number of neighbouring slots); and batch norm follows each convolution as
in :mod:`.encoder`.

All slots are computed at once: the ``T`` copies of the nodes are stacked, and slot ``t``'s edges join the
``t``-th copy, so one convolution call serves every slot.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.nn import global_mean_pool

from ssl_core.errors import ConfigError
from ssl_graph.models.encoder import KINDS, _conv


@dataclass
class SEConvConfig:
    """Shape of a :class:`SEConvEncoder` (``--set method.encoder.<name>=<value>``).

    Args:
        kind: the intra- and inter-time convolution, ``gin``, ``gcn`` or ``gat`` (PyG).
        hidden_dim: width of every state.
        num_layers: SEConv layers (each is two message-passing steps; the paper uses one).
        cyclic: the slots wrap around (the periods of a day: the last slot neighbours the first); otherwise
            the first and last slots have one neighbouring slot.
        heads: attention heads of GAT (``hidden_dim`` must be divisible by it).
        dropout: dropout on each layer's output during training.
    """

    kind: str = "gin"
    hidden_dim: int = 64
    num_layers: int = 1
    cyclic: bool = True
    heads: int = 4
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"encoder.kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.hidden_dim < 1 or self.num_layers < 1:
            raise ConfigError("encoder.hidden_dim and encoder.num_layers must be positive")
        if self.kind == "gat" and self.hidden_dim % self.heads:
            raise ConfigError(f"encoder.hidden_dim={self.hidden_dim} must be divisible by encoder.heads={self.heads}")


def slot_mixing(num_slots: int, cyclic: bool) -> torch.Tensor:
    """The inter-time averaging weights: row ``t`` averages slot ``t`` with its neighbouring slots.

    Shapes:
        - output: ``(num_slots, num_slots)``, rows summing to one
    """
    mix = torch.eye(num_slots)
    for t in range(num_slots):
        for s in (t - 1, t + 1):
            if cyclic or 0 <= s < num_slots:
                mix[t, s % num_slots] = 1.0
    return mix / mix.sum(1, keepdim=True)


class SEConvEncoder(nn.Module):
    """A stack of SEConv layers over an evolving graph (edges carrying ``edge_slot``).

    Args:
        config: the shape (:class:`SEConvConfig`).
        in_dim: node feature width.
        num_slots: time slots ``T`` of the data.

    Shapes:
        - :meth:`slot_states`: ``x (N, in_dim), edge_index (2, E), edge_slot (E,) -> (T, N, node_dim)``
        - :meth:`forward`: a PyG ``Batch`` of ``B`` neighbourhoods (or graphs) -> ``(B, T * node_dim)``
    """

    def __init__(self, config: SEConvConfig, in_dim: int, num_slots: int) -> None:
        super().__init__()
        if num_slots < 2:
            raise ConfigError(
                f"SEConv needs an evolving graph with at least two time slots, the data has {num_slots}; use "
                "data.name=urban or --data FILE.csv with src,dst,slot rows"
            )
        self.config, self.in_dim, self.num_slots = config, in_dim, num_slots
        c = config
        dims = [in_dim] + [c.hidden_dim] * c.num_layers
        self.intra = nn.ModuleList(_conv(c.kind, dims[i], c.hidden_dim, c.heads) for i in range(c.num_layers))
        self.inter = nn.ModuleList(_conv(c.kind, c.hidden_dim, c.hidden_dim, c.heads) for _ in range(c.num_layers))
        self.intra_norms = nn.ModuleList(nn.BatchNorm1d(c.hidden_dim) for _ in range(c.num_layers))
        self.inter_norms = nn.ModuleList(nn.BatchNorm1d(c.hidden_dim) for _ in range(c.num_layers))
        self.register_buffer("mixing", slot_mixing(num_slots, c.cyclic), persistent=False)
        self.node_dim = c.hidden_dim * c.num_layers
        self.embed_dim = num_slots * self.node_dim

    def slot_states(self, x: torch.Tensor, edge_index: torch.Tensor, edge_slot: torch.Tensor) -> torch.Tensor:
        """Every node's representation in every slot (the layers' outputs concatenated), ``(T, N, node_dim)``."""
        T, N = self.num_slots, x.shape[0]
        if edge_slot.numel() and (int(edge_slot.min()) < 0 or int(edge_slot.max()) >= T):
            raise ValueError(f"edge_slot must lie in [0, {T}), got values up to {int(edge_slot.max())}")
        stacked = edge_index + edge_slot * N  # slot t's edges join the t-th copy of the nodes
        # inter-time edges: slot s's edges also join copy t for every slot t that mixes s in (t-1, t, t+1)
        target, source = self.mixing.nonzero(as_tuple=True)  # pairs (t, s)
        inter_edges = torch.cat(
            [edge_index[:, edge_slot == s] + t * N for t, s in zip(target.tolist(), source.tolist(), strict=True)], 1
        )
        h = x.repeat(T, 1)  # (T*N, in_dim): every slot starts from the node features
        outs = []
        for intra, inter, n1, n2 in zip(self.intra, self.inter, self.intra_norms, self.inter_norms, strict=True):
            a = torch.relu(n1(intra(h, stacked)))  # intra-time aggregation, (T*N, hidden)
            m = torch.einsum("ts,snd->tnd", self.mixing, a.view(T, N, -1))  # inter-time: neighbouring slots
            h = torch.relu(n2(inter(m.reshape(T * N, -1), inter_edges)))  # propagated over those slots' graphs
            h = nn.functional.dropout(h, self.config.dropout, self.training)
            outs.append(h.view(T, N, -1))
        return torch.cat(outs, dim=-1)

    def readout(self, states: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Per-sample vectors: the centre node of each neighbourhood (else the mean node of each graph), its
        slots concatenated, ``(B, T * node_dim)``."""
        center = batch.get("center_index")
        if center is not None:
            per_slot = states[:, center]  # (T, B, node_dim)
        else:
            index = batch.batch if batch.get("batch") is not None else torch.zeros(states.shape[1], dtype=torch.long)
            per_slot = torch.stack([global_mean_pool(s, index, int(index.max()) + 1) for s in states])
        return per_slot.permute(1, 0, 2).reshape(per_slot.shape[1], -1)

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.readout(self.slot_states(batch.x, batch.edge_index, batch.edge_slot), batch)


def build_seconv(config: dict[str, Any]) -> SEConvEncoder:
    """Registry builder: a :class:`SEConvEncoder` from the ``config`` dict of an export."""
    cfg = dict(config)
    in_dim, num_slots = cfg.pop("in_dim"), cfg.pop("num_slots")
    return SEConvEncoder(SEConvConfig(**cfg), in_dim, num_slots)


def seconv_export_config(encoder: SEConvEncoder) -> dict[str, Any]:
    """The JSON-serialisable configuration :func:`build_seconv` rebuilds the encoder from."""
    return {**asdict(encoder.config), "in_dim": encoder.in_dim, "num_slots": encoder.num_slots}

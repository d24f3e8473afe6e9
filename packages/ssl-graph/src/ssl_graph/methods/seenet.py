"""SEENet: time-aware self-supervision on evolving graphs (Li et al., 2023, "Multi-Temporal Relationship
Inference in Urban Areas", seed 30).

The encoder is SEConv (:mod:`ssl_graph.models.seconv`): intra-time aggregation over each slot's graph and
inter-time propagation between neighbouring slots, giving every node a state ``h^t`` per slot ``t``. SE-SSL
trains it with time-aware tasks that pair each slot ``t`` with the next one ``t+1`` (cyclically for
periods of a day, as the paper's morning / midday / night / late-night segments):

- global task: each node's state ``h_v^t`` is discriminated against the summary of its region at the
  next slot, ``s_g^{t+1} = sigmoid(mean_{u in g} h_u^{t+1})``, from the state of a node of another region,
  by DGI's bilinear discriminator and binary cross entropy (:func:`ssl_core.losses.dgi_loss`).
  The paper's regions are cells of a spatial grid; ours are the sampled neighbourhoods of a batch (a
  node's local area), and the negatives are nodes of the other neighbourhoods. The authors'
  ``TimeDiscriminator`` passes nodes and summary through a shared linear layer and takes the plain mean;
  we keep DGI's form (sigmoid of the mean, no extra layer).
- local task: pairs of nodes linked in slot ``t`` are told from corrupted pairs (the second node
  replaced by a random node of the same neighbourhood) by an MLP per slot over the pair's states in
  both slots, ``[h_u^t * h_v^t, h_u^{t+1} * h_v^{t+1}]``, with binary cross entropy -- the authors'
  ``calc_evo_score``. What the authors' pair labels mark is not published; linked-in-slot-``t`` versus
  corrupted is our choice.
- evolving constraint: a node's state must evolve smoothly, staying recognisable from one slot to the
  next: InfoNCE of ``h_v^t`` against ``h_v^{t+1}`` with the other nodes' next states as negatives
  (``ssl_core.losses.info_nce``). The paper names an evolving constraint without a formula we could
  find; this contrastive form (smooth without collapsing every slot onto one state) is ours.

The loss is ``w_global * L_global + w_local * L_local + w_evolve * L_evolve``, each averaged over the slot
steps ``t -> t+1`` (the authors sum them). The authors weight their global and local terms the same way (``w_global``,
``w_local``); their regulariser on distance-bucket embeddings has no counterpart here, SEConv being
built from PyG convolutions without distance embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.nn import global_mean_pool

from ssl_core.errors import ConfigError
from ssl_core.losses import dgi_loss, info_nce
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_graph.data.graphs import GraphInfo, collate_graphs
from ssl_graph.models.heads import mlp_head
from ssl_graph.models.seconv import SEConvConfig, SEConvEncoder, seconv_export_config
from ssl_graph.transforms.augment import Identity


def slot_steps(num_slots: int, cyclic: bool) -> list[tuple[int, int]]:
    """The pairs ``(t, t+1)`` the time-aware tasks join: every slot with the next, wrapping when ``cyclic``."""
    return [(t, (t + 1) % num_slots) for t in range(num_slots if cyclic else num_slots - 1)]


def time_global_loss(
    h_t: torch.Tensor, h_next: torch.Tensor, graph_index: torch.Tensor, negatives: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """SE-SSL's global task: nodes at slot ``t`` against their region's summary at slot ``t+1``.

    ``s_g = sigmoid(mean of h_next over the nodes of g)``; each node ``v`` scores ``h_t[v]^T W s_g(v)``
    (label 1) and the node ``negatives[v]`` of another region scores ``h_t[negatives[v]]^T W s_g(v)``
    (label 0), with binary cross entropy averaged over both (DGI's eq. 1).

    Args:
        h_t: node states at slot ``t``.
        h_next: node states at slot ``t+1``.
        graph_index: the region (sampled neighbourhood) of each node, ``0..G-1``.
        negatives: for each node, a node of another region.
        weight: the bilinear form ``W``.

    Shapes:
        - h_t, h_next: ``(N, D)``; graph_index, negatives: ``(N,)``; weight: ``(D, D)``; output: scalar
    """
    summary = torch.sigmoid(global_mean_pool(h_next, graph_index, int(graph_index.max()) + 1))  # (G, D)
    return dgi_loss(h_t, h_t[negatives], summary, graph_index, weight)


def pair_features(h_t: torch.Tensor, h_next: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """A node pair in two slots: ``[h_u^t * h_v^t, h_u^{t+1} * h_v^{t+1}]``.

    Shapes:
        - h_t, h_next: ``(N, D)``; pairs: ``(2, P)``; output: ``(P, 2 * D)``
    """
    u, v = pairs
    return torch.cat([h_t[u] * h_t[v], h_next[u] * h_next[v]], dim=-1)


def time_local_loss(
    h_t: torch.Tensor, h_next: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, scorer: nn.Module
) -> torch.Tensor:
    """SE-SSL's local task: pairs linked in slot ``t`` (label 1) against corrupted pairs (label 0), scored
    from both slots' states by ``scorer`` (``(P, 2D) -> (P, 1)`` logits), binary cross entropy.

    Shapes:
        - h_t, h_next: ``(N, D)``; pos: ``(2, P)``; neg: ``(2, Q)``; output: scalar
    """
    if pos.shape[1] + neg.shape[1] == 0:  # no link in this slot of the batch: nothing to score
        return h_t.sum() * 0.0
    logits = scorer(pair_features(h_t, h_next, torch.cat([pos, neg], dim=1))).squeeze(-1)
    labels = torch.cat([logits.new_ones(pos.shape[1]), logits.new_zeros(neg.shape[1])])
    return F.binary_cross_entropy_with_logits(logits, labels)


def evolving_constraint(h_t: torch.Tensor, h_next: torch.Tensor, temperature: float) -> torch.Tensor:
    """SE-SSL's evolving constraint, in our contrastive form: InfoNCE of each node's state at slot ``t``
    against its own state at ``t+1``, the other nodes' states at ``t+1`` being the negatives.

    Shapes:
        - h_t, h_next: ``(N, D)`` (row ``i`` the same node); output: scalar
    """
    return info_nce(h_t, h_next, temperature=temperature)


@dataclass
class SEDraws:
    """The random choices of one SE-SSL step (drawn by :meth:`SEENet.draw`, so the objective is a function).

    Args:
        negatives: for each node, a node of another region (global task).
        pos: per slot step, the pairs linked in slot ``t`` (local task).
        neg: per slot step, the corrupted pairs (local task).
        nodes: the nodes of the evolving constraint.

    Shapes:
        - negatives: ``(N,)``; pos[i]: ``(2, P_i)``; neg[i]: ``(2, P_i)``; nodes: ``(M,)``
    """

    negatives: torch.Tensor
    pos: list[torch.Tensor]
    neg: list[torch.Tensor]
    nodes: torch.Tensor


@dataclass
class SEENetConfig:
    """SEENet settings (``--set method.<name>=<value>``).

    Args:
        encoder: the SEConv encoder (the paper: one layer).
        w_global, w_local, w_evolve: weights of the global task, the local task and the evolving constraint.
        temperature: tau of the evolving constraint's InfoNCE.
        max_pairs: linked pairs scored per slot step by the local task (a random subset beyond it).
        max_nodes: nodes in the evolving constraint per step (a random subset; its cost is quadratic).
    """

    encoder: SEConvConfig = field(default_factory=SEConvConfig)
    w_global: float = 1.0
    w_local: float = 1.0
    w_evolve: float = 0.5
    temperature: float = 0.5
    max_pairs: int = 2048
    max_nodes: int = 512

    def __post_init__(self) -> None:
        if min(self.w_global, self.w_local, self.w_evolve) < 0 or not (self.w_global + self.w_local + self.w_evolve):
            raise ConfigError("method.w_global, w_local and w_evolve must be non-negative and not all zero")
        if self.temperature <= 0 or self.max_pairs < 1 or self.max_nodes < 2:
            raise ConfigError("method.temperature must be positive, max_pairs at least 1 and max_nodes at least 2")


class SEENet(Method):
    """SEENet: SEConv trained by SE-SSL's global and local time-aware tasks and the evolving constraint.

    Shapes:
        - batch: a PyG batch of neighbourhoods of an evolving graph (``edge_slot`` on the edges)
        - :meth:`embed`: a batch of ``B`` neighbourhoods -> ``(B, T * node_dim)`` (the centre node in every slot)
    """

    def __init__(self, config: SEENetConfig, info: GraphInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        self.backbone = SEConvEncoder(config.encoder, info.num_features, info.num_slots)
        d = self.backbone.node_dim
        self.steps = slot_steps(info.num_slots, config.encoder.cyclic)
        self.weight = nn.Parameter(torch.empty(d, d))  # the global task's bilinear discriminator
        nn.init.xavier_uniform_(self.weight)
        self.pair_scorers = nn.ModuleList(mlp_head(2 * d, d, 1) for _ in self.steps)  # one per slot, as the authors

    def pretext(self) -> Identity:
        return Identity()

    def collate(self):
        return collate_graphs

    def draw(self, batch: Batch) -> SEDraws:
        """Negatives and pairs of one step, from torch's global generator (seeded per step by the trainer)."""
        index, n = batch.batch, batch.num_nodes
        if batch.num_graphs < 2:
            raise ConfigError("SEENet's global task needs at least two neighbourhoods per batch: train.batch_size >= 2")
        counts = torch.bincount(index, minlength=batch.num_graphs)
        ptr = torch.cumsum(counts, 0) - counts  # batches keep each sample's nodes contiguous
        other = (index + torch.randint(1, batch.num_graphs, (n,), device=index.device)) % batch.num_graphs
        negatives = ptr[other] + (torch.rand(n, device=index.device) * counts[other]).long()
        src, dst = batch.edge_index
        pos, neg = [], []
        for t, _ in self.steps:
            links = batch.edge_index[:, (batch.edge_slot == t) & (src < dst)]  # each undirected link once
            if links.shape[1] > self.config.max_pairs:
                links = links[:, torch.randperm(links.shape[1], device=links.device)[: self.config.max_pairs]]
            g = index[links[0]]
            fake = ptr[g] + (torch.rand(links.shape[1], device=links.device) * counts[g]).long()
            pos.append(links)
            neg.append(torch.stack([links[0], fake]))
        nodes = torch.randperm(n, device=index.device)[: self.config.max_nodes]
        return SEDraws(negatives, pos, neg, nodes)

    def objective(self, states: torch.Tensor, graph_index: torch.Tensor, draws: SEDraws) -> dict[str, torch.Tensor]:
        """The three SE-SSL terms, each averaged over the slot steps.

        Shapes:
            - states: ``(T, N, D)``; graph_index: ``(N,)``
        """
        g, loc, evo = [], [], []
        for i, (t, s) in enumerate(self.steps):
            g.append(time_global_loss(states[t], states[s], graph_index, draws.negatives, self.weight))
            loc.append(time_local_loss(states[t], states[s], draws.pos[i], draws.neg[i], self.pair_scorers[i]))
            evo.append(evolving_constraint(states[t][draws.nodes], states[s][draws.nodes], self.config.temperature))
        return {"global": torch.stack(g).mean(), "local": torch.stack(loc).mean(), "evolve": torch.stack(evo).mean()}

    def forward(self, batch: Batch) -> MethodOutput:
        states = self.backbone.slot_states(batch.x, batch.edge_index, batch.edge_slot)  # (T, N, D)
        losses = self.objective(states, batch.batch, self.draw(batch))
        c = self.config
        total = c.w_global * losses["global"] + c.w_local * losses["local"] + c.w_evolve * losses["evolve"]
        return MethodOutput(total, {f"loss_{k}": v.detach() for k, v in losses.items()})

    def backbone_spec(self) -> BackboneSpec:
        return BackboneSpec(
            name="seconv",
            config=seconv_export_config(self.backbone),
            embed_dim=self.backbone.embed_dim,
            input={
                "level": self.info.level,
                "num_features": self.info.num_features,
                "num_slots": self.info.num_slots,
                "layout": "a torch_geometric Batch of node neighbourhoods with x (N, num_features) float, edge_index "
                "(2, E), edge_slot (E,) the time slot of each edge, and center_index, the position of each centre "
                "node; the embedding is the centre node's state in every slot, concatenated",
            },
        )

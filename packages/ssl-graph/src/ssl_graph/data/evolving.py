"""Evolving graphs: one set of nodes whose edges change from time slot to time slot (SEENet's setting; Li
et al., 2023, "Multi-Temporal Relationship Inference in Urban Areas", seed 30).

An evolving graph is held as one PyG ``Data`` whose edges carry the slot they belong to (``edge_slot``, an
integer in ``[0, num_slots)``): slot ``t``'s graph is the edges with ``edge_slot == t``. Node-level
methods sample neighbourhoods over the union of the slots (:mod:`.neighborhood`); the induced subgraph
keeps every slot's edges, so a time-aware encoder (:class:`ssl_graph.models.seconv.SEConvEncoder`) sees
each slot apart while a static one sees the union.

No real evolving graph ships offline, so the default is generated (:func:`urban_mobility`): locations
in a city whose latent function (residential, office, leisure) sets when and with whom they are linked.
User data: a CSV of ``src,dst,slot`` rows (:func:`load_slot_csv`) or, from Python, a list of per-slot
edge lists (:func:`from_slot_edges`).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import torch
from torch_geometric.data import Data

from ssl_core.data import DataBundle
from ssl_core.errors import DataError

FUNCTIONS = ("residential", "office", "leisure")
SLOTS = ("morning", "midday", "evening", "night")

# Relative activity between location functions in each slot (symmetric; rows and columns in FUNCTIONS
# order): commuting in the morning and evening, work and lunch at midday, going out at night.
ACTIVITY = torch.tensor(
    [
        [[0.10, 1.00, 0.10], [1.00, 0.20, 0.10], [0.10, 0.10, 0.05]],  # morning
        [[0.10, 0.10, 0.30], [0.10, 0.50, 1.00], [0.30, 1.00, 0.20]],  # midday
        [[0.20, 0.60, 0.80], [0.60, 0.05, 0.30], [0.80, 0.30, 0.40]],  # evening
        [[0.30, 0.02, 0.50], [0.02, 0.02, 0.02], [0.50, 0.02, 1.00]],  # night
    ]
)
MEAN_DEGREE = (8.0, 6.0, 8.0, 4.0)  # undirected links per location and slot, on average
POPULARITY_SIGMA = 0.5  # spread of the locations' overall popularity (log scale)
GRAVITY_EXPONENT = 2.0  # how fast links become rarer with distance
ROUTINE_SIGMA = 0.0  # spread of each location's own activity in each slot around its function's (log scale)
LEISURE_HUBS = torch.tensor([[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]])


def from_slot_edges(edge_lists: Sequence[torch.Tensor], num_nodes: int, x: torch.Tensor | None = None) -> Data:
    """An evolving graph from one edge list per time slot.

    Each slot's edges are made undirected and deduplicated; self-loops are kept. Nodes without edges in a
    slot are simply isolated there.

    Args:
        edge_lists: ``edge_lists[t]`` holds the links of slot ``t``.
        num_nodes: the number of nodes (ids in ``[0, num_nodes)``).
        x: node features (``None``: the bundle gives one-hot degrees of the union graph).

    Shapes:
        - edge_lists[t]: ``(2, E_t)`` integers
        - x: ``(num_nodes, F)``
        - output: ``Data`` with ``edge_index (2, E)``, ``edge_slot (E,)`` and ``num_slots``
    """
    from torch_geometric.utils import coalesce, to_undirected

    if len(edge_lists) < 2:
        raise DataError(
            f"an evolving graph needs at least two time slots, got {len(edge_lists)}; for one static graph use "
            "an edge list ('u v' lines in a .txt file)"
        )
    parts, slots = [], []
    for t, e in enumerate(edge_lists):
        e = torch.as_tensor(e, dtype=torch.long)
        if e.numel() == 0:
            e = e.reshape(2, 0)
        if e.ndim != 2 or e.shape[0] != 2:
            raise DataError(f"slot {t}: expected an edge list of shape (2, E), got {tuple(e.shape)}")
        if e.numel() and int(e.min()) < 0:
            raise DataError(f"slot {t} has an edge to node {int(e.min())}; node ids are 0..{num_nodes - 1}")
        if e.numel() and int(e.max()) >= num_nodes:
            raise DataError(f"slot {t} has an edge to node {int(e.max())} but the graph has {num_nodes} nodes")
        e = coalesce(to_undirected(e, num_nodes=num_nodes), num_nodes=num_nodes)
        parts.append(e)
        slots.append(torch.full((e.shape[1],), t, dtype=torch.long))
    graph = Data(edge_index=torch.cat(parts, 1), edge_slot=torch.cat(slots), num_nodes=num_nodes)
    if x is not None:
        if x.shape[0] != num_nodes:
            raise DataError(f"{x.shape[0]} rows of node features for {num_nodes} nodes")
        graph.x = x.float()
    graph.num_slots = len(edge_lists)
    return graph


def urban_mobility(num_locations: int = 900, num_slots: int = 4, seed: int = 0) -> tuple[Data, torch.Tensor]:
    """A generated city: locations with a latent function linked by a gravity model that changes by slot.

    Each location has a function (residential, office or leisure; equally many of each), a position in the
    unit square (offices around the centre, leisure around four hubs, homes anywhere) and a popularity
    ``m ~ LogNormal(0, 0.5)``. In slot ``t`` the weight of the pair ``(u, v)`` is the gravity model
    ``m_u m_v A_t[f_u, f_v] / (d_uv + 0.05)^2``, with ``A_t`` the activity between the two functions in that
    slot (:data:`ACTIVITY`: morning and evening commutes, midday work and lunch, leisure at night), and
    ``num_locations * MEAN_DEGREE[t] / 2`` distinct pairs are drawn without replacement in proportion to it.
    Node features are the positions only: the function shows in *when* and *with whom* a location is
    linked, which a probe of the embeddings can score against the positions alone.

    Args:
        num_locations: locations (rounded down to a multiple of 3, the functions being balanced).
        num_slots: time slots, at most 4 (morning, midday, evening, night).
        seed: seeds every draw; the same arguments give the same graph.

    Shapes:
        - output: ``(graph, function)``; graph.x ``(N, 2)``, graph.edge_index ``(2, E)``, graph.edge_slot
          ``(E,)``; function ``(N,)`` in ``[0, 3)``
    """
    if not 2 <= num_slots <= len(SLOTS):
        raise DataError(f"the urban generator has 2 to {len(SLOTS)} slots ({', '.join(SLOTS)}), got {num_slots}")
    n = num_locations - num_locations % len(FUNCTIONS)
    if n < 3 * len(FUNCTIONS):
        raise DataError(f"the urban generator needs at least 9 locations, got {num_locations}")
    g = torch.Generator().manual_seed(seed)
    function = torch.arange(n) % len(FUNCTIONS)
    function = function[torch.randperm(n, generator=g)]
    pos = torch.rand(n, 2, generator=g)  # residential: anywhere
    office = function == 1
    pos[office] = 0.5 + 0.15 * torch.randn(int(office.sum()), 2, generator=g)
    leisure = function == 2
    hub = torch.randint(len(LEISURE_HUBS), (int(leisure.sum()),), generator=g)
    pos[leisure] = LEISURE_HUBS[hub] + 0.1 * torch.randn(len(hub), 2, generator=g)
    pos = pos.clamp(0, 1)
    mass = torch.exp(POPULARITY_SIGMA * torch.randn(n, generator=g))
    routine = torch.exp(ROUTINE_SIGMA * torch.randn(num_slots, n, generator=g))

    iu, iv = torch.triu_indices(n, n, offset=1)  # every unordered pair once
    gravity = mass[iu] * mass[iv] / ((pos[iu] - pos[iv]).norm(dim=1) + 0.05) ** GRAVITY_EXPONENT
    edge_lists = []
    for t in range(num_slots):
        w = gravity * ACTIVITY[t][function[iu], function[iv]] * routine[t, iu] * routine[t, iv]
        pick = torch.multinomial(w, round(n * MEAN_DEGREE[t] / 2), replacement=False, generator=g)
        edge_lists.append(torch.stack([iu[pick], iv[pick]]))
    return from_slot_edges(edge_lists, n, x=pos), function


def is_slot_csv(path: Path) -> bool:
    """Whether ``path`` is a ``.csv`` file whose header names a ``slot`` column (an evolving graph)."""
    if path.suffix.lower() != ".csv":
        return False
    with path.open(newline="") as f:
        return "slot" in [c.strip().lower() for c in next(csv.reader(f), [])]


def load_slot_csv(path: Path) -> tuple[Data, torch.Tensor | None, list[int]]:
    """An evolving graph from a CSV file with a header naming ``src``, ``dst`` and ``slot`` columns.

    Node ids are non-negative integers; slots are integers, ordered by value (``0..3``, or hours, or days),
    each distinct value one slot. Edges are undirected. Node labels for the probes come from a file
    ``<stem>.labels`` beside it, ``node label`` per line (nodes without a line get none), as for edge lists.

    Returns:
        ``(graph, labels, slot_values)``: see :func:`from_slot_edges`; labels ``(N,)`` with ``-1`` for
        unlabelled nodes, or ``None``; the slot value of each slot index.
    """
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    header = [c.strip().lower() for c in rows[0]] if rows else []
    if not {"src", "dst", "slot"} <= set(header):
        raise DataError(f"{path}: the first line must name the columns src,dst,slot (got {','.join(header)!r})")
    cols = [header.index(c) for c in ("src", "dst", "slot")]
    triples = []
    for n, row in enumerate(rows[1:], 2):
        if not any(c.strip() for c in row):
            continue
        try:
            triples.append(tuple(int(row[c]) for c in cols))
        except (ValueError, IndexError):
            raise DataError(f"{path}:{n}: expected integer src, dst and slot, got {','.join(row)!r}") from None
    if not triples:
        raise DataError(f"{path} holds no edges (expected src,dst,slot rows after the header)")
    src, dst, slot = torch.tensor(triples).t()
    if int(torch.minimum(src, dst).min()) < 0:
        raise DataError(f"{path}: node ids must be non-negative")
    values, slot_index = torch.unique(slot, return_inverse=True)
    if len(values) < 2:
        raise DataError(
            f"{path}: every edge is in slot {int(values[0])}; an evolving graph needs at least two slots (for one "
            "static graph use an edge list, 'u v' lines in a .txt file)"
        )
    num_nodes = int(torch.maximum(src, dst).max()) + 1
    edges = torch.stack([src, dst])
    graph = from_slot_edges([edges[:, slot_index == t] for t in range(len(values))], num_nodes)
    from ssl_graph.data.sources import read_node_labels

    label_file = path.with_suffix(".labels")
    labels = read_node_labels(label_file, num_nodes) if label_file.is_file() else None
    return graph, labels, values.tolist()


def evolving_bundle(graph: Data, labels: torch.Tensor | None, name: str, cfg, slot_names: Sequence[str]) -> DataBundle:
    """Node-level pretraining and probes on an evolving graph (one sample per node, its neighbourhood over
    every slot; see :func:`ssl_graph.data.graphs.node_level_bundle`), with the slot count in the info."""
    from ssl_graph.data.graphs import node_level_bundle

    bundle = node_level_bundle(graph, labels, name, cfg)
    bundle.info.num_slots = int(graph.num_slots)
    bundle.description += f"; {graph.num_slots} time slots ({', '.join(str(s) for s in slot_names)})"
    return bundle

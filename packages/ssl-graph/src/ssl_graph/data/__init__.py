"""Graph data sets: bundled (MUTAG, Cuneiform, molecules, karate club), a generated evolving city graph, and
user files."""

from ssl_graph.data.evolving import from_slot_edges, load_slot_csv, urban_mobility
from ssl_graph.data.graphs import DATASETS, GraphDataConfig, GraphInfo, collate_graphs, collate_views, load_data
from ssl_graph.data.neighborhood import EgoGraphs, NeighborhoodSampler

__all__ = [
    "DATASETS",
    "EgoGraphs",
    "GraphDataConfig",
    "GraphInfo",
    "NeighborhoodSampler",
    "collate_graphs",
    "collate_views",
    "from_slot_edges",
    "load_data",
    "load_slot_csv",
    "urban_mobility",
]

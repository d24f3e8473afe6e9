"""Graph data sets: bundled (MUTAG, Cuneiform, molecules, karate club) and user files."""

from ssl_graph.data.graphs import DATASETS, GraphDataConfig, GraphInfo, collate_graphs, load_data
from ssl_graph.data.neighborhood import EgoGraphs, NeighborhoodSampler

__all__ = [
    "DATASETS",
    "EgoGraphs",
    "GraphDataConfig",
    "GraphInfo",
    "NeighborhoodSampler",
    "collate_graphs",
    "load_data",
]

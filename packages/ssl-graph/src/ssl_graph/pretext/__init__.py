"""Pretext-task generators: the Eulerian serialisation of graphs into tokens (GraphGPT), and the node and edge
masks of GraphMAE and link prediction."""

from ssl_graph.pretext.eulerian import attribute_tokens, deserialize, serialize
from ssl_graph.pretext.masking import mask_nodes, split_edges

__all__ = ["attribute_tokens", "deserialize", "mask_nodes", "serialize", "split_edges"]

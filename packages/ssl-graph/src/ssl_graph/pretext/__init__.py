"""Pretext-task generators: the Eulerian serialisation of graphs into tokens (GraphGPT)."""

from ssl_graph.pretext.eulerian import attribute_tokens, deserialize, serialize

__all__ = ["attribute_tokens", "deserialize", "serialize"]

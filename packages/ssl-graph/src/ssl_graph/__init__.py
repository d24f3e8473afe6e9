"""selfsup for graphs and molecules on PyTorch Geometric: data sets, PyG augmentations, GNN encoders, the
Eulerian serialiser and the methods of the ``graph/<method>`` recipes (see README.md)."""

__version__ = "0.1.0"

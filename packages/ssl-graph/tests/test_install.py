"""PyTorch Geometric works here, and the core's generic batch mover handles its batches."""

import torch
from torch_geometric.data import Batch, Data

import ssl_graph
from ssl_core.train.data import to_device


def test_pyg_batches_move_with_the_core():
    g1 = Data(x=torch.randn(3, 4), edge_index=torch.tensor([[0, 1], [1, 2]]))
    g2 = Data(x=torch.randn(2, 4), edge_index=torch.tensor([[0], [1]]))
    batch = Batch.from_data_list([g1, g2])
    moved = to_device(batch, torch.device("cpu"))
    assert isinstance(moved, Batch) and moved.num_graphs == 2
    assert moved.edge_index.tolist() == [[0, 1, 3], [1, 2, 4]]
    assert ssl_graph.__version__

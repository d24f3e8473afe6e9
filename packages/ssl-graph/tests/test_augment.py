import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.utils import is_undirected, to_undirected

from ssl_core.errors import ConfigError
from ssl_graph.transforms import (
    AugmentConfig,
    DropEdges,
    DropNodes,
    MaskFeatures,
    SubgraphSample,
    build_augment,
)


def ring(n=20, feats=6):
    src = torch.arange(n)
    ei = to_undirected(torch.stack([src, (src + 1) % n]))
    return Data(x=torch.randn(n, feats), edge_index=ei, edge_attr=ei[0:1].t().float() + ei[1:2].t().float())


def test_drop_edges_removes_both_directions_at_the_expected_rate():
    torch.manual_seed(0)
    g = ring(400)
    out = DropEdges(0.3)(g)
    assert is_undirected(out.edge_index)
    assert abs(out.edge_index.shape[1] / g.edge_index.shape[1] - 0.7) < 0.07
    # edge attributes follow their edges
    assert torch.equal(out.edge_attr[:, 0], (out.edge_index[0] + out.edge_index[1]).float())
    assert out.num_nodes == g.num_nodes and torch.equal(out.x, g.x)


def test_mask_features_columns_or_nodes():
    torch.manual_seed(0)
    g = Data(x=torch.ones(500, 200), edge_index=torch.zeros(2, 0, dtype=torch.long))
    cols = MaskFeatures(0.25, "column")(g).x
    assert ((cols == 0).all(0) | (cols == 1).all(0)).all()  # whole columns
    assert abs((cols[0] == 0).float().mean() - 0.25) < 0.08
    rows = MaskFeatures(0.25, "node")(g).x
    assert ((rows == 0).all(1) | (rows == 1).all(1)).all()
    assert abs((rows[:, 0] == 0).float().mean() - 0.25) < 0.06
    assert torch.equal(g.x, torch.ones(500, 200))  # the input is not modified


def test_drop_nodes_keeps_consistent_subgraph_and_the_centre():
    torch.manual_seed(0)
    g = ring(300)
    g.x = torch.arange(300).float().view(-1, 1)
    out = DropNodes(0.2)(g)
    assert abs(out.num_nodes / 300 - 0.8) < 0.08
    kept = out.x.view(-1).long()
    # every remaining edge joins nodes that were neighbours on the ring
    a, b = kept[out.edge_index[0]], kept[out.edge_index[1]]
    assert (((a - b) % 300 == 1) | ((b - a) % 300 == 1)).all()
    ego = ring(10)
    ego.x = torch.arange(10).float().view(-1, 1)
    ego.center_index = torch.tensor([0])
    for _ in range(20):
        o = DropNodes(0.9)(ego)
        assert o.center_index.tolist() == [0] and o.x[0, 0] == 0 and o.num_nodes >= 1


def test_subgraph_is_connected_and_sized():
    from torch_geometric.utils import to_networkx

    torch.manual_seed(0)
    g = ring(50)
    out = SubgraphSample(0.6)(g)
    assert out.num_nodes == 30
    import networkx as nx

    assert nx.is_connected(to_networkx(out, to_undirected=True))
    single = Data(x=torch.ones(1, 2), edge_index=torch.zeros(2, 0, dtype=torch.long))
    assert SubgraphSample(0.5)(single).num_nodes == 1


def test_views_are_seeded_by_the_global_generator():
    g = ring(40)
    aug = build_augment(AugmentConfig())
    torch.manual_seed(3)
    a = aug(g)
    torch.manual_seed(3)
    b = aug(g)
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.x, b.x)


def test_config_errors():
    with pytest.raises(ConfigError, match="pool"):
        AugmentConfig(pool=["rotate"])
    with pytest.raises(ConfigError, match="strengths"):
        AugmentConfig(strength=1.0)

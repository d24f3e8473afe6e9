import pytest
import torch
from torch_geometric.data import Data, InMemoryDataset
from torch_geometric.utils import k_hop_subgraph, to_undirected

from ssl_core.errors import ConfigError, DataError
from ssl_graph.data import EgoGraphs, GraphDataConfig, NeighborhoodSampler, load_data
from ssl_graph.data.graphs import check_graphs, raw_graph_features


@pytest.fixture
def cfg(tmp_path):
    return lambda **kw: GraphDataConfig(cache_dir=str(tmp_path / "cache"), **kw)


@pytest.mark.parametrize(
    "name,graphs,classes,features",
    [("mutag", 188, 2, 7), ("cuneiform", 267, 30, 10), ("solubility", 1282, 3, 10)],
)
def test_bundled_graph_sets(cfg, name, graphs, classes, features):
    b = load_data(cfg(name=name))
    assert len(b.train) == graphs and b.info.num_classes == classes and b.info.num_features == features
    assert b.info.level == "graph"
    assert len(b.probe_train.labels) + len(b.probe_test.labels) == graphs
    batch = b.collate_fn(b.probe_test.inputs[:3])
    raw = b.raw_features(batch)
    assert raw.shape == (3, features + 2)
    assert raw[0, -2] == b.probe_test.inputs[0].num_nodes  # node count beside the summed features
    assert "y" not in b.train[0]  # labels never reach pretraining


def test_mutag_matches_the_published_statistics(cfg):
    b = load_data(cfg())
    labels = torch.cat([b.probe_train.labels, b.probe_test.labels])
    assert sorted(torch.bincount(labels).tolist()) == [63, 125]
    assert sum(g.num_nodes for g in b.train) / 188 == pytest.approx(17.93, abs=0.01)
    assert b.info.edge_dim == 4


def test_karate_is_node_level(cfg):
    b = load_data(cfg(name="karate"))
    assert b.info.level == "node" and len(b.train) == 34 and b.info.num_classes == 4
    item = b.probe_train.inputs[0]
    assert item.center_index.tolist() == [0] and "y" not in item
    batch = b.collate_fn([b.probe_train.inputs[i] for i in range(3)])
    assert batch.center_index.tolist()[0] == 0 and len(batch.center_index) == 3
    assert b.raw_features(batch).shape == (3, 34)


def test_neighbourhood_sampling_matches_pyg_k_hop_and_caps_the_fanout():
    g = torch.Generator().manual_seed(0)
    ei = to_undirected(torch.randint(0, 300, (2, 3000), generator=g), num_nodes=300)
    data = Data(x=torch.randn(300, 3), edge_index=ei)
    full = NeighborhoodSampler(data, num_hops=2, num_neighbors=-1)
    for seed in (0, 17, 299):
        ours = set(full.nodes(seed).tolist())
        subset, *_ = k_hop_subgraph(seed, 2, ei, num_nodes=300)
        assert ours == set(subset.tolist())
    sampled = NeighborhoodSampler(data, num_hops=1, num_neighbors=4)
    nodes = sampled.nodes(5, torch.Generator().manual_seed(1))
    nbrs = set(ei[0][ei[1] == 5].tolist())
    assert nodes[0] == 5 and len(nodes) <= 5 and set(nodes[1:].tolist()) <= nbrs
    sub = sampled.sample(5, torch.Generator().manual_seed(1))
    torch.testing.assert_close(sub.x[0], data.x[5])  # the seed is node 0
    ego = EgoGraphs(sampled, torch.tensor([5, 6]), deterministic=True)
    assert torch.equal(ego[0].edge_index, ego[0].edge_index) and ego[1].center_index.tolist() == [0]


def write_tu(folder, name, graphs):
    """Write graphs in TU format (1-based node ids): NAME_A, _graph_indicator, _graph_labels, _node_labels."""
    folder.mkdir(parents=True)
    a, ind, lab, nl, offset = [], [], [], [], 0
    for gi, (edges, labels, y) in enumerate(graphs):
        for u, v in edges:
            a += [f"{u + offset + 1}, {v + offset + 1}", f"{v + offset + 1}, {u + offset + 1}"]
        ind += [str(gi + 1)] * len(labels)
        nl += [str(x) for x in labels]
        lab.append(str(y))
        offset += len(labels)
    for suffix, lines in (("A", a), ("graph_indicator", ind), ("graph_labels", lab), ("node_labels", nl)):
        (folder / f"{name}_{suffix}.txt").write_text("\n".join(lines) + "\n")


def test_user_tu_folder(cfg, tmp_path):
    graphs = [([(0, 1), (1, 2)], [0, 1, 0], 1), ([(0, 1)], [1, 1], -1)] * 5
    write_tu(tmp_path / "tiny", "TINY", graphs)
    b = load_data(cfg(path=str(tmp_path / "tiny")))
    assert len(b.train) == 10 and b.info.num_classes == 2 and b.info.num_features == 2


def test_pyg_file_and_edge_list(cfg, tmp_path):
    graphs = [
        Data(x=torch.randn(4, 3), edge_index=to_undirected(torch.tensor([[0, 1], [1, 2]])), y=torch.tensor([i % 2]))
        for i in range(12)
    ]
    InMemoryDataset.save(graphs, str(tmp_path / "mine.pt"))
    b = load_data(cfg(path=str(tmp_path / "mine.pt")))
    assert len(b.train) == 12 and b.info.level == "graph" and b.info.num_classes == 2

    (tmp_path / "g.txt").write_text("# a path\n0 1\n1 2\n2 3\n3 0\n4 5\n")
    (tmp_path / "g.labels").write_text("0 0\n1 0\n2 1\n3 1\n4 0\n5 1\n")
    b = load_data(cfg(path=str(tmp_path / "g.txt")))
    assert b.info.level == "node" and len(b.train) == 6 and b.info.num_classes == 2
    assert b.info.num_features == 33  # no features: one-hot degrees, capped at 32
    (tmp_path / "bad.txt").write_text("0 x\n")
    with pytest.raises(DataError, match="bad.txt:1"):
        load_data(cfg(path=str(tmp_path / "bad.txt")))


def test_bad_graphs_name_the_problem(cfg, tmp_path):
    ok = Data(x=torch.ones(2, 3), edge_index=torch.tensor([[0, 1], [1, 0]]))
    with pytest.raises(DataError, match="no graphs"):
        check_graphs([], "set")
    with pytest.raises(DataError, match="graph 1 has no nodes"):
        check_graphs([ok, Data(x=torch.ones(0, 3), edge_index=torch.zeros(2, 0, dtype=torch.long))], "set")
    with pytest.raises(DataError, match="graph 1 has 4 node features but graph 0 has 3"):
        check_graphs([ok, Data(x=torch.ones(2, 4), edge_index=ok.edge_index)], "set")
    with pytest.raises(DataError, match="graph 1 has no node features but others do"):
        check_graphs([ok, Data(edge_index=ok.edge_index, num_nodes=2)], "set")
    with pytest.raises(DataError, match="edge attributes"):
        check_graphs([ok, Data(x=torch.ones(2, 3), edge_index=ok.edge_index, edge_attr=torch.ones(2, 2))], "set")
    with pytest.raises(DataError, match="edge to node 5"):
        check_graphs([Data(x=torch.ones(2, 3), edge_index=torch.tensor([[0], [5]]))], "set")
    # documented handling: graphs without edges are kept, graphs without features get one-hot degrees
    lonely = check_graphs([Data(x=torch.ones(3, 3), edge_index=torch.zeros(2, 0, dtype=torch.long))], "set")
    assert lonely[0].num_nodes == 3 and lonely[0].edge_index.shape == (2, 0)
    bare = check_graphs([Data(edge_index=ok.edge_index, num_nodes=3)], "set")
    assert bare[0].x.shape == (3, 33) and bare[0].x[2, 0] == 1  # node 2 is isolated: degree 0
    batch = load_data(cfg()).collate_fn(lonely)
    assert raw_graph_features(batch).tolist() == [[3.0, 3.0, 3.0, 3.0, 0.0]]
    with pytest.raises(DataError, match="not found"):
        load_data(cfg(path=str(tmp_path / "nope")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither TU files"):
        load_data(cfg(path=str(tmp_path / "empty")))
    with pytest.raises(ConfigError, match="data.name"):
        GraphDataConfig(name="cora")


def test_non_finite_features_are_refused_with_the_file_and_the_count(cfg, tmp_path):
    graphs = [([(0, 1), (1, 2)], [0, 1, 0], 1), ([(0, 1)], [1, 1], -1)] * 5
    write_tu(tmp_path / "tiny", "TINY", graphs)
    attrs = ["0.5, 1.0"] * 25
    attrs[7] = "nan, 1.0"
    attrs[8] = "inf, nan"
    (tmp_path / "tiny" / "TINY_node_attributes.txt").write_text("\n".join(attrs) + "\n")
    with pytest.raises(DataError, match=r"tiny.* \(node features\) holds 3 non-finite values \(2 NaN, 1 infinite\)"):
        load_data(cfg(path=str(tmp_path / "tiny")))

    edges = to_undirected(torch.tensor([[0, 1], [1, 2]]))
    good = [
        Data(x=torch.randn(3, 2), edge_index=edges, edge_attr=torch.ones(4, 1), y=torch.tensor([i % 2]))
        for i in range(6)
    ]
    bad = good[:5] + [
        Data(x=torch.randn(3, 2), edge_index=edges, edge_attr=torch.full((4, 1), float("inf")), y=torch.tensor([1]))
    ]
    InMemoryDataset.save(bad, str(tmp_path / "bad.pt"))
    with pytest.raises(DataError, match=r"bad.pt \(edge attributes\) holds 4 non-finite values \(0 NaN, 4 infinite\)"):
        load_data(cfg(path=str(tmp_path / "bad.pt")))
    InMemoryDataset.save(good, str(tmp_path / "good.pt"))
    assert len(load_data(cfg(path=str(tmp_path / "good.pt"))).train) == 6


def test_the_probe_split_keeps_each_class_on_both_sides(cfg, tmp_path):
    """The split is ssl_core.data.stratified_split (graph level and node level alike)."""
    graphs = [([(0, 1)], [0, 1], 1), ([(0, 1)], [1, 1], -1)] * 2 + [([(0, 1)], [0, 0], 2)]  # 2, 2 and 1 graphs
    write_tu(tmp_path / "tiny", "TINY", graphs)
    b = load_data(cfg(path=str(tmp_path / "tiny"), test_fraction=0.8))
    assert sorted(b.probe_train.labels.tolist()) == [0, 1, 2] and sorted(b.probe_test.labels.tolist()) == [0, 1]
    (tmp_path / "g.txt").write_text("0 1\n1 2\n2 3\n3 4\n")
    (tmp_path / "g.labels").write_text("0 0\n1 0\n2 1\n3 1\n")  # node 4 has no label
    b = load_data(cfg(path=str(tmp_path / "g.txt"), test_fraction=0.8))
    assert sorted(b.probe_train.labels.tolist()) == sorted(b.probe_test.labels.tolist()) == [0, 1]

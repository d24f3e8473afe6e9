"""deserialize(serialize(g)) is isomorphic to g, node and edge attributes included."""

import networkx as nx
import pytest
import torch
from networkx.algorithms.isomorphism import DiGraphMatcher
from torch_geometric.data import Data
from torch_geometric.utils import to_undirected

from ssl_core.errors import DataError
from ssl_graph.data import GraphDataConfig, load_data
from ssl_graph.pretext import attribute_tokens, deserialize, serialize


def to_nx(data: Data) -> nx.DiGraph:
    """An attributed networkx graph, written independently of the serialiser (self-loops kept; directed, so
    that attributes that differ by direction are compared too)."""
    g = nx.DiGraph()
    for i in range(data.num_nodes):
        g.add_node(i, x=tuple(data.x[i].tolist()) if data.x is not None else ())
    ea = data.get("edge_attr")
    for c, (u, v) in enumerate(data.edge_index.t().tolist()):
        g.add_edge(u, v, e=tuple(ea[c].tolist()) if ea is not None else ())
    return g


def isomorphic(a: Data, b: Data) -> bool:
    ga, gb = to_nx(a), to_nx(b)
    if ga.number_of_nodes() != gb.number_of_nodes() or ga.number_of_edges() != gb.number_of_edges():
        return False
    if nx.number_of_selfloops(ga) != nx.number_of_selfloops(gb):
        return False
    matcher = DiGraphMatcher(ga, gb, node_match=lambda p, q: p["x"] == q["x"], edge_match=lambda p, q: p["e"] == q["e"])
    return matcher.is_isomorphic()


def random_graph(seed: int) -> Data:
    """A random undirected graph: several components, isolated nodes, self-loops, integer and float attributes."""
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(1, 16, (1,), generator=g))
    p = float(torch.rand(1, generator=g)) * 0.5
    adj = torch.rand(n, n, generator=g) < p
    adj = torch.triu(adj, diagonal=1)
    loops = torch.rand(n, generator=g) < 0.15
    u, v = adj.nonzero().t()
    edge_index = to_undirected(torch.stack([u, v]), num_nodes=n)
    loop_idx = loops.nonzero().view(-1)
    edge_index = torch.cat([edge_index, torch.stack([loop_idx, loop_idx])], 1)
    f_dim, e_dim = int(torch.randint(0, 4, (1,), generator=g)), int(torch.randint(0, 3, (1,), generator=g))
    x = torch.randint(0, 3, (n, f_dim), generator=g).float()
    if seed % 3 == 0 and f_dim:
        x[:, 0] = torch.randn(n, generator=g)  # continuous attributes survive exactly
    data = Data(x=x, edge_index=edge_index, num_nodes=n)
    if e_dim:
        # one attribute per undirected edge, equal in both directions
        key = torch.minimum(edge_index[0], edge_index[1]) * n + torch.maximum(edge_index[0], edge_index[1])
        table = torch.randint(0, 3, (n * n, e_dim), generator=g).float()
        data.edge_attr = table[key]
    return data


def test_round_trip_on_random_graphs():
    gen = torch.Generator().manual_seed(0)
    kinds = {"disconnected": 0, "self_loops": 0, "isolated": 0, "no_edges": 0}
    for seed in range(300):
        data = random_graph(seed)
        back = deserialize(serialize(data, gen))
        assert isomorphic(data, back), seed
        g = to_nx(data).to_undirected()
        kinds["disconnected"] += nx.number_connected_components(g) > 1
        kinds["self_loops"] += nx.number_of_selfloops(g) > 0
        kinds["isolated"] += any(d == 0 for _, d in g.degree())
        kinds["no_edges"] += g.number_of_edges() == 0
    assert all(v >= 5 for v in kinds.values()), kinds  # every hard case was exercised


@pytest.mark.parametrize("name", ["mutag", "cuneiform", "solubility"])
def test_round_trip_on_real_graphs(name, tmp_path):
    bundle = load_data(GraphDataConfig(name=name, cache_dir=str(tmp_path)))
    gen = torch.Generator().manual_seed(1)
    for i in range(0, len(bundle.train), max(1, len(bundle.train) // 100)):
        data = bundle.train[i]
        assert isomorphic(data, deserialize(serialize(data, gen))), (name, i)


def test_paths_are_random_but_seeded_and_node_ids_are_first_visit_order():
    data = random_graph(4)
    a = serialize(data, torch.Generator().manual_seed(0))
    b = serialize(data, torch.Generator().manual_seed(0))
    assert a == b
    variants = {tuple(serialize(data, torch.Generator().manual_seed(s))) for s in range(20)}
    assert len(variants) > 1
    nodes = [int(t[1:]) for t in a if t.startswith("n")]
    firsts = list(dict.fromkeys(nodes))
    assert firsts == list(range(len(firsts)))
    assert a[0] == "<bos>" and a[-1] == "<eos>"


def test_an_eulerian_graph_visits_each_edge_once():
    cycle = Data(x=torch.ones(5, 1), edge_index=to_undirected(torch.tensor([[0, 1, 2, 3, 4], [1, 2, 3, 4, 0]])))
    tokens = serialize(cycle, torch.Generator().manual_seed(0))
    assert sum(t.startswith("n") for t in tokens) == 6  # five edges: six node visits, back to the start
    star = Data(x=torch.ones(4, 1), edge_index=to_undirected(torch.tensor([[0, 0, 0], [1, 2, 3]])))
    tokens = serialize(star, torch.Generator().manual_seed(0))
    # four odd nodes: networkx's eulerize pairs them all (a circuit), duplicating three edges: 6 walks, 7 visits
    assert sum(t.startswith("n") for t in tokens) == 7


def test_bad_graphs_give_clear_errors():
    directed = Data(x=torch.ones(2, 1), edge_index=torch.tensor([[0], [1]]))
    with pytest.raises(DataError, match="no reverse"):
        serialize(directed)
    parallel = Data(x=torch.ones(2, 1), edge_index=torch.tensor([[0, 1, 0, 1], [1, 0, 1, 0]]))
    with pytest.raises(DataError, match="parallel"):
        serialize(parallel)
    arcs = Data(x=torch.ones(2, 1), edge_index=torch.tensor([[0, 1], [1, 0]]), edge_attr=torch.tensor([[1.0], [0.0]]))
    assert "<rev>" in serialize(arcs) and isomorphic(arcs, deserialize(serialize(arcs)))  # attributes per direction
    with pytest.raises(DataError, match="without nodes"):
        serialize(Data(x=torch.zeros(0, 1), edge_index=torch.zeros(2, 0, dtype=torch.long)))
    with pytest.raises(DataError, match="starts with"):
        deserialize(["n0"])
    with pytest.raises(DataError, match="unknown token"):
        deserialize(["<bos>", "x_dim=0", "e_dim=0", "n0", "what"])


def test_attribute_tokens_by_frequency():
    g = Data(x=torch.tensor([[1.0, 0], [1, 0], [0, 2.5]]), edge_index=torch.tensor([[0, 1], [1, 0]]))
    g.edge_attr = torch.tensor([[3.0], [3.0]])
    assert attribute_tokens([g]) == ["a0=1", "e0=3", "a1=2.5"]

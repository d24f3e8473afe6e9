"""Evolving graphs (SEENet's setting, seed 30): the generated city, user CSV files of src,dst,slot rows and
their errors, and neighbourhoods that keep each edge's slot."""

import pytest
import torch

from ssl_core.errors import DataError
from ssl_graph.data import GraphDataConfig, evolving, from_slot_edges, load_data, urban_mobility


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    """A small generated city (90 locations) written as a user CSV with a label file, and loaded back."""
    graph, function = urban_mobility(num_locations=90, seed=3)
    path = tmp_path_factory.mktemp("city") / "city.csv"
    rows = ["src,dst,slot"] + [
        f"{u},{v},{t}" for (u, v), t in zip(graph.edge_index.t().tolist(), graph.edge_slot.tolist(), strict=True)
    ]
    path.write_text("\n".join(rows) + "\n")
    path.with_suffix(".labels").write_text("".join(f"{i} {int(c)}\n" for i, c in enumerate(function)))
    return load_data(GraphDataConfig(path=str(path)))


def test_urban_generator_is_deterministic_balanced_and_time_dependent():
    g1, f1 = urban_mobility(num_locations=300, seed=1)
    g2, f2 = urban_mobility(num_locations=300, seed=1)
    g3, _ = urban_mobility(num_locations=300, seed=2)
    assert torch.equal(g1.edge_index, g2.edge_index) and torch.equal(g1.edge_slot, g2.edge_slot)
    assert torch.equal(f1, f2) and torch.equal(g1.x, g2.x)
    assert not torch.equal(g1.edge_index, g3.edge_index)
    assert g1.x.shape == (300, 2) and g1.num_slots == 4 and f1.bincount().tolist() == [100, 100, 100]
    assert ((g1.x >= 0) & (g1.x <= 1)).all()
    for t, degree in enumerate(evolving.MEAN_DEGREE):  # every slot: the stated number of distinct links
        e = g1.edge_index[:, g1.edge_slot == t]
        assert e.shape[1] == 2 * round(300 * degree / 2) and (e[0] != e[1]).all()
        assert {tuple(p) for p in e.t().tolist()} == {tuple(p) for p in e.flip(0).t().tolist()}  # undirected
    # the function shows in when a location is linked: offices are busy at midday and silent at night,
    # leisure is busiest at night
    src, slot = g1.edge_index[0], g1.edge_slot
    share = torch.stack([torch.bincount(f1[src[slot == t]], minlength=3) / (slot == t).sum() for t in range(4)])
    assert share[1, 1] > 0.4 and share[3, 1] < 0.1 and share[3, 2] > 0.5
    with pytest.raises(DataError, match="2 to 4 slots"):
        urban_mobility(num_slots=5)
    with pytest.raises(DataError, match="at least 9 locations"):
        urban_mobility(num_locations=6)


def test_bundled_urban_data_is_node_level_with_slots():
    b = load_data(GraphDataConfig(name="urban"))
    assert b.info.level == "node" and b.info.num_slots == 4 and b.info.num_classes == 3
    assert len(b.train) == 900 and len(b.probe_train.labels) + len(b.probe_test.labels) == 900
    item = b.train[0]
    assert item.edge_slot.shape == (item.edge_index.shape[1],) and int(item.edge_slot.max()) <= 3
    batch = b.collate_fn([b.probe_test.inputs[i] for i in range(3)])
    assert batch.edge_slot.shape == (batch.edge_index.shape[1],) and batch.center_index.tolist()[0] == 0


def test_user_csv_round_trips_the_generated_graph(city):
    assert city.info.num_slots == 4 and city.info.num_classes == 3 and len(city.train) == 90
    assert "4 time slots (0, 1, 2, 3)" in city.description
    # a neighbourhood keeps each edge's slot: the induced subgraph of the full graph, slot by slot
    graph, _ = urban_mobility(num_locations=90, seed=3)
    item = city.train.sampler.sample(5, torch.Generator().manual_seed(0))
    nodes = city.train.sampler.nodes(5, torch.Generator().manual_seed(0))
    for t in range(4):
        e = graph.edge_index[:, graph.edge_slot == t]
        inside = torch.isin(e, nodes).all(0)
        expected = {(int(nodes[u]), int(nodes[v])) for u, v in item.edge_index[:, item.edge_slot == t].t().tolist()}
        assert expected == {tuple(p) for p in e[:, inside].t().tolist()}


def test_user_csv_slots_are_ordered_values_and_errors_name_the_fix(tmp_path):
    path = tmp_path / "trips.csv"
    path.write_text("src,dst,slot,count\n0,1,18,3\n1,2,7,1\n\n2,3,12,5\n3,0,7,2\n")
    graph, labels, slots = evolving.load_slot_csv(path)
    assert slots == [7, 12, 18] and labels is None and graph.num_nodes == 4 and graph.num_slots == 3
    links = {
        (u, v, t) for (u, v), t in zip(graph.edge_index.t().tolist(), graph.edge_slot.tolist(), strict=True) if u < v
    }
    assert links == {(0, 1, 2), (1, 2, 0), (2, 3, 1), (0, 3, 0)}

    cases = {
        "a,b\n0,1\n": "must name the columns src,dst,slot",
        "": "must name the columns src,dst,slot",
        "src,dst,slot\n": "holds no edges",
        "src,dst,slot\n0,1,0\n1,x,1\n": "trips.csv:3: expected integer src, dst and slot",
        "src,dst,slot\n0,1,0\n1,2\n": "trips.csv:3: expected integer",
        "src,dst,slot\n0,1,4\n1,2,4\n": "every edge is in slot 4; an evolving graph needs at least two slots",
        "src,dst,slot\n0,-1,0\n1,2,1\n": "non-negative",
    }
    for text, message in cases.items():
        path.write_text(text)
        with pytest.raises(DataError, match=message):
            evolving.load_slot_csv(path)
    path.write_text("src,dst,slot\n0,1,0\n1,2,1\n")
    path.with_suffix(".labels").write_text("0 1\n7 0\n")
    with pytest.raises(DataError, match="trips.labels:2: node 7 is not in the graph"):
        load_data(GraphDataConfig(path=str(path)))
    path.with_suffix(".labels").write_text("0 1\n1 zero\n")
    with pytest.raises(DataError, match="trips.labels:2: expected 'node label' integers"):
        load_data(GraphDataConfig(path=str(path)))

    with pytest.raises(DataError, match="at least two time slots"):
        from_slot_edges([torch.tensor([[0], [1]])], 2)
    with pytest.raises(DataError, match="slot 1 has an edge to node 5 but the graph has 3 nodes"):
        from_slot_edges([torch.tensor([[0], [1]]), torch.tensor([[2], [5]])], 3)
    with pytest.raises(DataError, match=r"slot 0: expected an edge list of shape \(2, E\)"):
        from_slot_edges([torch.tensor([[0, 1], [1, 2], [2, 0]]), []], 3)
    g = from_slot_edges([torch.tensor([[0, 1], [1, 0]]), []], 3, x=torch.ones(3, 2))  # a slot may be empty
    assert g.edge_slot.tolist() == [0, 0] and g.x.shape == (3, 2)

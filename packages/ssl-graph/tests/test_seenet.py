"""SEENet (seed 30): SEConv against a slot-by-slot loop, each SE-SSL term and the whole objective against naive
references (values and gradients), one step, the embedding and its export, and a falling loss (the data:
tests/test_evolving.py)."""

import math

import pytest
import torch
import torch.nn.functional as F

from ssl_core.errors import ConfigError
from ssl_core.testing import fit_fixed_batch
from ssl_graph.data import GraphDataConfig, evolving, from_slot_edges, urban_mobility
from ssl_graph.data.graphs import collate_graphs
from ssl_graph.methods.seenet import (
    SEDraws,
    SEENet,
    SEENetConfig,
    evolving_constraint,
    slot_steps,
    time_global_loss,
    time_local_loss,
)
from ssl_graph.models.seconv import SEConvConfig, SEConvEncoder, build_seconv, seconv_export_config

SMALL = SEENetConfig(encoder=SEConvConfig(hidden_dim=16), max_pairs=64, max_nodes=64)


def _grads(fn, *tensors):
    ts = [t.clone().requires_grad_(True) for t in tensors]
    out = fn(*ts)
    out.backward()
    return out.detach(), [t.grad for t in ts]


def _assert_same(fn, naive, *tensors):
    v1, g1 = _grads(fn, *tensors)
    v2, g2 = _grads(naive, *tensors)
    torch.testing.assert_close(v1, v2)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b)


@pytest.fixture(scope="module")
def city():
    """A small generated city (90 locations) as a node-level bundle."""
    graph, function = urban_mobility(num_locations=90, seed=3)
    return evolving.evolving_bundle(graph, function, "city", GraphDataConfig(), evolving.SLOTS)


# --- SEConv -------------------------------------------------------------------------------------------


def _random_evolving(n=7, slots=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    lists = [torch.randint(n, (2, 9), generator=g) for _ in range(slots)]
    graph = from_slot_edges(lists, n, x=torch.randn(n, 4, generator=g))
    return graph.x, graph.edge_index, graph.edge_slot


@pytest.mark.parametrize("kind,cyclic", [("gin", True), ("gcn", False), ("gat", True)])
def test_seconv_matches_a_slot_by_slot_loop(kind, cyclic):
    torch.manual_seed(0)
    x, ei, slot = _random_evolving()
    enc = SEConvEncoder(SEConvConfig(kind=kind, hidden_dim=8, num_layers=2, cyclic=cyclic, heads=2), 4, 3).eval()
    T = 3
    neighbours = {t: [s for s in (t - 1, t, t + 1) if cyclic or 0 <= s < T] for t in range(T)}
    h = [x] * T
    outs = []
    for intra, inter, n1, n2 in zip(enc.intra, enc.inter, enc.intra_norms, enc.inter_norms, strict=True):
        a = [torch.relu(n1(intra(h[t], ei[:, slot == t]))) for t in range(T)]  # each slot's own graph
        m = [torch.stack([a[s % T] for s in neighbours[t]]).mean(0) for t in range(T)]
        union = [torch.cat([ei[:, slot == s % T] for s in neighbours[t]], 1) for t in range(T)]
        h = [torch.relu(n2(inter(m[t], union[t]))) for t in range(T)]
        outs.append(torch.stack(h))
    torch.testing.assert_close(enc.slot_states(x, ei, slot), torch.cat(outs, -1))


def test_seconv_rejects_static_graphs_and_bad_slots():
    with pytest.raises(ConfigError, match="at least two time slots"):
        SEConvEncoder(SEConvConfig(), 4, 0)
    with pytest.raises(ConfigError, match="encoder.kind"):
        SEConvConfig(kind="sage")
    x, ei, slot = _random_evolving()
    with pytest.raises(ValueError, match="edge_slot must lie in"):
        SEConvEncoder(SEConvConfig(hidden_dim=8), 4, 2).slot_states(x, ei, slot)
    assert slot_steps(4, True) == [(0, 1), (1, 2), (2, 3), (3, 0)] and slot_steps(3, False) == [(0, 1), (1, 2)]


# --- SE-SSL objectives against naive references -------------------------------------------------------


def naive_global(h_t, h_next, graph_index, negatives, w):
    """DGI's eq. 1 node by node, the summary taken at the next slot: s_g = sigmoid(mean_{u in g} h_next[u])."""
    summary = {}
    for g in set(graph_index.tolist()):
        members = [u for u in range(len(h_t)) if graph_index[u] == g]
        summary[g] = torch.sigmoid(torch.stack([h_next[u] for u in members]).mean(0))
    terms = []
    for v in range(len(h_t)):
        s = summary[int(graph_index[v])]
        terms.append(torch.log(torch.sigmoid(h_t[v] @ w @ s)))
        terms.append(torch.log(1 - torch.sigmoid(h_t[negatives[v]] @ w @ s)))
    return -torch.stack(terms).mean()


def naive_local(h_t, h_next, pos, neg, scorer):
    """Pair by pair: BCE of scorer([h_u^t * h_v^t, h_u^{t+1} * h_v^{t+1}]), linked pairs 1, corrupted 0."""
    terms = []
    for pairs, label in ((pos, 1.0), (neg, 0.0)):
        for u, v in pairs.t().tolist():
            p = torch.sigmoid(scorer(torch.cat([h_t[u] * h_t[v], h_next[u] * h_next[v]]))[0])
            terms.append(torch.log(p) if label else torch.log(1 - p))
    return -torch.stack(terms).mean()


def naive_evolve(h_t, h_next, tau):
    """InfoNCE written out: -log exp(cos(h_t[i], h_next[i]) / tau) / sum_j exp(cos(h_t[i], h_next[j]) / tau)."""
    terms = []
    for i in range(len(h_t)):
        sims = torch.stack([F.cosine_similarity(h_t[i], h_next[j], dim=0) / tau for j in range(len(h_next))])
        terms.append(-(sims[i] - torch.logsumexp(sims, 0)))
    return torch.stack(terms).mean()


def test_time_global_loss_matches_naive():
    g = torch.Generator().manual_seed(0)
    h_t, h_next = (
        torch.randn(9, 5, generator=g, dtype=torch.float64),
        torch.randn(9, 5, generator=g, dtype=torch.float64),
    )
    w = torch.randn(5, 5, generator=g, dtype=torch.float64) * 0.3
    index = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    negatives = torch.tensor([3, 5, 8, 0, 7, 1, 2, 4, 3])
    _assert_same(
        lambda a, b, c: time_global_loss(a, b, index, negatives, c),
        lambda a, b, c: naive_global(a, b, index, negatives, c),
        h_t,
        h_next,
        w,
    )


def test_time_local_loss_matches_naive():
    torch.manual_seed(0)
    scorer = torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Linear(6, 1)).double()
    h_t, h_next = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    pos, neg = torch.tensor([[0, 1, 2, 4], [1, 3, 5, 5]]), torch.tensor([[0, 1, 2, 4], [2, 0, 0, 1]])
    _assert_same(
        lambda a, b: time_local_loss(a, b, pos, neg, scorer),
        lambda a, b: naive_local(a, b, pos, neg, scorer),
        h_t,
        h_next,
    )
    empty = torch.zeros(2, 0, dtype=torch.long)
    assert time_local_loss(h_t, h_next, empty, empty, scorer).item() == 0.0  # no link in the slot: no term


def test_evolving_constraint_matches_naive():
    g = torch.Generator().manual_seed(2)
    h_t, h_next = (
        torch.randn(7, 5, generator=g, dtype=torch.float64),
        torch.randn(7, 5, generator=g, dtype=torch.float64),
    )
    _assert_same(lambda a, b: evolving_constraint(a, b, 0.5), lambda a, b: naive_evolve(a, b, 0.5), h_t, h_next)
    # a node that keeps its state from slot to slot, unlike the others, costs little
    same = evolving_constraint(h_t, h_t, 0.1)
    assert same < evolving_constraint(h_t, h_next, 0.1) and same < math.log(7)


def test_seenet_objective_is_the_weighted_sum_of_the_naive_terms(city):
    torch.manual_seed(0)
    cfg = SEENetConfig(
        encoder=SEConvConfig(hidden_dim=4),
        w_global=0.7,
        w_local=1.3,
        w_evolve=0.4,
        temperature=0.3,
        max_pairs=8,
        max_nodes=12,
    )
    method = SEENet(cfg, city.info).double()
    batch = collate_graphs([city.train[i] for i in range(3)])
    draws = method.draw(batch)
    assert isinstance(draws, SEDraws) and len(draws.pos) == len(method.steps) == 4
    index = batch.batch
    assert (index[draws.negatives] != index).all()  # negatives come from another neighbourhood
    for i, (t, _) in enumerate(method.steps):
        linked = set(map(tuple, batch.edge_index[:, batch.edge_slot == t].t().tolist()))
        assert set(map(tuple, draws.pos[i].t().tolist())) <= linked  # positives: linked in slot t
        assert 0 < draws.pos[i].shape[1] <= 8 and (draws.pos[i][0] < draws.pos[i][1]).all()  # each link once
        assert (index[draws.neg[i][0]] == index[draws.neg[i][1]]).all()  # corruptions stay in the neighbourhood
    states = torch.randn(4, batch.num_nodes, 4, dtype=torch.float64)

    def ours(s):
        terms = method.objective(s, index, draws)
        return cfg.w_global * terms["global"] + cfg.w_local * terms["local"] + cfg.w_evolve * terms["evolve"]

    def naive(s):
        g, loc, evo = 0, 0, 0
        for i, (t, u) in enumerate(method.steps):
            g = g + naive_global(s[t], s[u], index, draws.negatives, method.weight)
            loc = loc + naive_local(s[t], s[u], draws.pos[i], draws.neg[i], method.pair_scorers[i])
            evo = evo + naive_evolve(s[t][draws.nodes], s[u][draws.nodes], cfg.temperature)
        n = len(method.steps)
        return (cfg.w_global * g + cfg.w_local * loc + cfg.w_evolve * evo) / n

    _assert_same(ours, naive, states)


# --- training -----------------------------------------------------------------------------------------


def test_step_embed_export_and_loss_falls(city):
    torch.manual_seed(0)
    method = SEENet(SMALL, city.info)
    batch = collate_graphs([city.train[i] for i in range(16)])
    out = method(batch)
    assert torch.isfinite(out.loss) and set(out.logs) == {"loss_global", "loss_local", "loss_evolve"}
    out.loss.backward()
    assert all(p.grad is not None for p in method.parameters()), "every parameter gets a gradient"

    method.eval()
    probe = city.collate_fn([city.probe_test.inputs[i] for i in range(5)])
    emb = method.embed(probe)
    spec = method.backbone_spec()
    assert emb.shape == (5, spec.embed_dim) and spec.embed_dim == 4 * 16 and spec.input["num_slots"] == 4
    # the embedding is the centre node's state in every slot, concatenated
    states = method.backbone.slot_states(probe.x, probe.edge_index, probe.edge_slot)
    centre = probe.ptr[2]
    torch.testing.assert_close(emb[2], states[:, centre].reshape(-1))
    rebuilt = build_seconv(seconv_export_config(method.backbone))
    rebuilt.load_state_dict(method.backbone.state_dict())
    torch.testing.assert_close(rebuilt.eval()(probe), emb)
    method.train()

    losses = fit_fixed_batch(method, batch, 25, lr=5e-3, optimizer="adam", reseed=2)
    assert sum(losses[-4:]) / 4 < 0.95 * sum(losses[:4]) / 4, losses


def test_seenet_needs_an_evolving_graph(city):
    import dataclasses

    static = dataclasses.replace(city.info, num_slots=0)
    with pytest.raises(ConfigError, match="data.name=urban"):
        SEENet(SMALL, static)
    method = SEENet(SMALL, city.info)
    with pytest.raises(ConfigError, match="batch_size >= 2"):
        method(collate_graphs([city.train[0]]))
    with pytest.raises(ConfigError, match="w_global"):
        SEENetConfig(w_global=0, w_local=0, w_evolve=0)

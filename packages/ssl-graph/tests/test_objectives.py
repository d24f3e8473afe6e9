"""Each method-specific objective against a naive reference written from the paper's equations (values and
gradients), and against PyG where it implements the same definition."""

import math

import pytest
import torch
import torch.nn.functional as F

from ssl_core.losses import dgi_loss
from ssl_graph.methods.graphgpt import ntp_loss, smtp_mask
from ssl_graph.methods.infograph import local_global_jsd
from ssl_graph.models.heads import link_bce
from ssl_graph.pretext.masking import mask_nodes, split_edges


def _grads(fn, *tensors):
    ts = [t.clone().requires_grad_(True) for t in tensors]
    out = fn(*ts)
    out.backward()
    return out.detach(), [t.grad for t in ts]


def naive_jsd(local, global_, graph_index):
    """InfoGraph / Deep InfoMax eq. 4, pair by pair: E_neg[softplus(T)] - E_pos[-softplus(-T)]."""
    pos, neg = [], []
    for i in range(len(local)):
        for g in range(len(global_)):
            t = (local[i] * global_[g]).sum()
            (pos if graph_index[i] == g else neg).append(t)
    e_pos = torch.stack([-F.softplus(-t) for t in pos]).mean()
    e_neg = torch.stack([F.softplus(t) for t in neg]).mean()
    return e_neg - e_pos


def test_infograph_jsd_matches_naive_values_and_gradients():
    g = torch.Generator().manual_seed(0)
    local, global_ = (
        torch.randn(13, 5, generator=g, dtype=torch.float64),
        torch.randn(4, 5, generator=g, dtype=torch.float64),
    )
    index = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3])
    v1, g1 = _grads(lambda a, b: local_global_jsd(a, b, index), local, global_)
    v2, g2 = _grads(lambda a, b, i=index: naive_jsd(a, b, i), local, global_)
    torch.testing.assert_close(v1, v2)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="two graphs"):
        local_global_jsd(local, global_[:1], torch.zeros(13, dtype=torch.long))


def test_dgi_loss_matches_pyg():
    """The core's ``dgi_loss`` (tested against the paper's eq. 1 in ssl-core) against PyG's DeepGraphInfomax."""
    from torch_geometric.nn import DeepGraphInfomax

    g = torch.Generator().manual_seed(1)
    h, hf = torch.randn(9, 6, generator=g, dtype=torch.float64), torch.randn(9, 6, generator=g, dtype=torch.float64)
    s, w = (
        torch.randn(1, 6, generator=g, dtype=torch.float64),
        torch.randn(6, 6, generator=g, dtype=torch.float64) * 0.3,
    )
    # PyG's DeepGraphInfomax.loss, one graph: the sum of the two BCE means (ours is their average), eps 1e-15
    peer = DeepGraphInfomax(6, encoder=torch.nn.Identity(), summary=lambda z, *a: z, corruption=lambda x: x).double()
    with torch.no_grad():
        peer.weight.copy_(w)
    ours = dgi_loss(h, hf, s, torch.zeros(9, dtype=torch.long), w)
    torch.testing.assert_close(2 * ours, peer.loss(h, hf, s[0]), rtol=1e-6, atol=1e-6)


def test_link_bce_matches_naive():
    g = torch.Generator().manual_seed(2)
    h = torch.randn(7, 4, generator=g, dtype=torch.float64)
    pos, neg = torch.tensor([[0, 1, 2], [3, 4, 5]]), torch.tensor([[0, 6], [6, 2]])

    def naive(h):
        terms = [torch.log(torch.sigmoid(h[u] @ h[v])) for u, v in pos.t().tolist()]
        terms += [torch.log(1 - torch.sigmoid(h[u] @ h[v])) for u, v in neg.t().tolist()]
        return -torch.stack(terms).mean()

    v1, g1 = _grads(lambda x: link_bce(x, pos, neg), h)
    v2, g2 = _grads(naive, h)
    torch.testing.assert_close(v1, v2)
    torch.testing.assert_close(g1[0], g2[0])


def test_split_edges_hides_both_directions():
    from torch_geometric.utils import to_undirected

    torch.manual_seed(0)
    n = 200
    ei = to_undirected(torch.randint(0, n, (2, 2000)), num_nodes=n)
    kept, hidden = split_edges(ei, n, 0.3)
    kept_set = set(map(tuple, kept.t().tolist()))
    for u, v in hidden.t().tolist():
        assert u < v and (u, v) not in kept_set and (v, u) not in kept_set
    undirected = (ei[0] < ei[1]).sum().item()
    assert abs(hidden.shape[1] / undirected - 0.3) < 0.05
    assert kept.shape[1] + 2 * hidden.shape[1] == ei.shape[1]


def test_graphmae_masks_the_configured_shares():
    masked, token, replaced = mask_nodes(1000, 0.75, 0.1, torch.Generator().manual_seed(0))
    assert len(masked) == 750 and len(set(masked.tolist())) == 750
    assert len(replaced) == 75 and len(token) == 675
    assert set(token.tolist()) | set(replaced.tolist()) == set(masked.tolist())


def test_ntp_loss_matches_a_loop():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 5, 11, generator=g, dtype=torch.float64)
    ids = torch.tensor([[1, 4, 5, 2, 0], [1, 7, 2, 0, 0]])
    pad = ids == 0
    terms = []
    for b in range(2):
        for t in range(4):
            if not pad[b, t + 1]:
                terms.append(-torch.log_softmax(logits[b, t], -1)[ids[b, t + 1]])
    torch.testing.assert_close(ntp_loss(logits, ids, pad), torch.stack(terms).mean())


def test_smtp_mask_follows_the_cosine_schedule():
    pad = torch.zeros(4000, 40, dtype=torch.bool)
    pad[:, 30:] = True  # 30 real tokens per row
    m = smtp_mask(pad, torch.Generator().manual_seed(0))
    assert not (m & pad).any() and (m.sum(1) >= 1).all()
    ratio = m.sum(1).float() / 30
    # r = cos(pi/2 u), u ~ U(0,1): E[r] = 2/pi; ceil(r L) / L adds on average about 1/(2L)
    assert abs(ratio.mean().item() - (2 / math.pi + 0.5 / 30)) < 0.02

"""MRR@k against a naive loop written from the definition."""

import pytest
import torch
import torch.nn.functional as F

from ssl_core.eval.retrieval import mrr_at_k


def naive_mrr(q, t, k):
    total = 0.0
    for i in range(len(q)):
        sims = [F.cosine_similarity(q[i], t[j], dim=0).item() for j in range(len(t))]
        rank = sum(s >= sims[i] for s in sims)  # ties count against the true target
        total += 1.0 / rank if rank <= k else 0.0
    return total / len(q)


@pytest.mark.parametrize("n,d,k", [(7, 3, 1), (40, 5, 10), (33, 16, 3)])
def test_mrr_matches_the_definition(n, d, k):
    g = torch.Generator().manual_seed(n)
    q, t = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    assert mrr_at_k(q, t, k, chunk_size=8) == pytest.approx(naive_mrr(q, t, k), abs=1e-9)


def test_mrr_of_perfect_and_tied_retrieval():
    x = torch.eye(5)
    assert mrr_at_k(x, x) == 1.0
    assert mrr_at_k(torch.ones(4, 2), torch.ones(4, 2), k=10) == pytest.approx(0.25)  # all tied: rank 4
    with pytest.raises(ValueError, match="two"):
        mrr_at_k(torch.ones(3, 2), torch.ones(4, 2))

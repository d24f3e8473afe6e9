"""Retrieval probe: mean reciprocal rank of the true target among all targets (e.g. docstring -> code)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mrr_at_k(queries: torch.Tensor, targets: torch.Tensor, k: int = 10, chunk_size: int = 1024) -> float:
    r"""Mean reciprocal rank at ``k`` of query ``i``'s own target ``i`` among all targets, by cosine similarity.

    :math:`\mathrm{MRR@k} = \frac{1}{N} \sum_i \frac{1}{r_i} [r_i \le k]`, with :math:`r_i` the rank of target
    :math:`i` for query :math:`i` (1 = most similar); ties count against the true target. The code-search
    metric of CodeSearchNet (Husain et al., 2019) and CodeXGLUE (Lu et al., 2021).

    Args:
        queries: query embeddings, row ``i`` paired with ``targets[i]``.
        targets: target embeddings.
        k: ranks beyond ``k`` score 0.
        chunk_size: queries per similarity block (memory ``O(chunk_size * N)``).

    Shapes:
        - queries: ``(N, D)``, targets: ``(N, D)``
    """
    if queries.ndim != 2 or queries.shape != targets.shape or len(queries) == 0:
        raise ValueError(
            f"expected two (N, D) embeddings of one shape, got {tuple(queries.shape)} and {tuple(targets.shape)}"
        )
    q = F.normalize(queries.float(), dim=1)
    t = F.normalize(targets.float(), dim=1)
    total = 0.0
    for lo in range(0, len(q), chunk_size):
        sim = q[lo : lo + chunk_size] @ t.T  # (c, N)
        own = sim[torch.arange(len(sim)), torch.arange(lo, lo + len(sim))]
        rank = (sim >= own[:, None]).sum(dim=1)  # 1 + number of other targets at least as similar
        total += torch.where(rank <= k, 1.0 / rank.double(), 0.0).sum().item()
    return total / len(q)

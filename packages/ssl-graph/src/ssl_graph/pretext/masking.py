"""Random masks over a graph's nodes and edges: GraphMAE's node masking and the hidden edges of link prediction.

Both are drawn per batch inside the method's ``forward`` (from torch's global generator, or ``generator``),
not per sample in the data-loader worker: GraphMAE's replacement features come from any node of the batch,
and ParetoGNN applies the same masking to the plain view of a multi-view batch.
"""

from __future__ import annotations

import torch


def mask_nodes(
    num_nodes: int, mask_rate: float, replace_rate: float, generator: torch.Generator | None = None, device=None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GraphMAE's node masking (Hou et al., 2022, Sec. 3.2): which nodes are masked, and which of them get
    another node's features instead of the ``[MASK]`` token.

    Args:
        num_nodes: nodes of the batch.
        mask_rate: share of the nodes masked (at least one).
        replace_rate: share of the masked nodes whose features are replaced by a random node's.
        generator: source of randomness (``None``: torch's global generator).
        device: where the indices are made.

    Returns:
        ``(masked, token, replaced)``: indices of all masked nodes, of those that take the ``[MASK]`` token
        (``1 - replace_rate`` of them), and of those whose features are replaced by a random node's.

    Shapes:
        - masked: ``(M,)`` with ``M = max(1, round(mask_rate * num_nodes))``; token and replaced split it
    """
    perm = torch.randperm(num_nodes, generator=generator, device=device)
    n_mask = max(1, int(round(mask_rate * num_nodes)))
    masked = perm[:n_mask]
    n_replace = int(round(replace_rate * n_mask))
    order = torch.randperm(n_mask, generator=generator, device=device)
    return masked, masked[order[n_replace:]], masked[order[:n_replace]]


def split_edges(edge_index: torch.Tensor, num_nodes: int, mask_rate: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Hide a random ``mask_rate`` of the undirected edges, both directions together (link prediction's
    held-out edges; Kipf and Welling, 2016).

    Args:
        edge_index: the edges, each undirected edge in both directions.
        num_nodes: nodes of the batch.
        mask_rate: probability that an undirected edge is hidden.

    Returns:
        ``(kept, hidden)``: the edges left for message passing (both directions) and one direction of each
        hidden edge (self-loops are never hidden).

    Shapes:
        - edge_index: ``(2, E)``; kept: ``(2, E_kept)``; hidden: ``(2, E_hidden)``
    """
    src, dst = edge_index
    key = torch.minimum(src, dst) * num_nodes + torch.maximum(src, dst)
    uniq, inv = torch.unique(key, return_inverse=True)
    hide = torch.rand(len(uniq), device=edge_index.device) < mask_rate
    hidden_dir = hide[inv] & (src < dst)
    return edge_index[:, ~hide[inv] | (src == dst)], edge_index[:, hidden_dir]

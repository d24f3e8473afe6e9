"""Mini-batched neighbourhood sampling for node-level learning on graphs too large for one batch.

GraphSAGE's sampler (Hamilton et al., 2017), as PyG's ``NeighborLoader`` implements it: from each seed
node, take at most ``num_neighbors`` random in-neighbours per hop for ``num_hops`` hops, and keep the
subgraph induced by the nodes reached. PyG's loader needs the compiled ``pyg-lib`` or ``torch-sparse``
extensions, which have no wheels on PyPI for current torch, so this is the same sampling in plain torch.
Each sample is one seed node's neighbourhood with the seed first (``center_index``, which PyG offsets
when batching), so node-level methods train and probe on ordinary batches of small graphs.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset
from torch_geometric.data import Data


class NeighborhoodSampler:
    """Samples the ``num_hops``-hop neighbourhood of a node with a fan-out of ``num_neighbors`` per hop.

    Args:
        graph: the full graph (``edge_index`` gives messages ``source -> target``; a node's neighbourhood is
            made of its in-neighbours, those it aggregates from).
        num_hops: hops to expand (the number of message-passing layers the encoder has, or fewer).
        num_neighbors: in-neighbours sampled per node and hop; ``-1`` keeps all.
    """

    def __init__(self, graph: Data, num_hops: int = 2, num_neighbors: int = 10) -> None:
        if num_hops < 0 or num_neighbors == 0 or num_neighbors < -1:
            raise ValueError(f"need num_hops >= 0 and num_neighbors > 0 or -1, got {num_hops} and {num_neighbors}")
        self.graph, self.num_hops, self.num_neighbors = graph, num_hops, num_neighbors
        n = graph.num_nodes
        src, dst = graph.edge_index
        order = torch.argsort(dst, stable=True)
        self.src = src[order]  # in-neighbours grouped by target
        self.ptr = torch.zeros(n + 1, dtype=torch.long)
        self.ptr[1:] = torch.cumsum(torch.bincount(dst, minlength=n), 0)

    def nodes(self, seed: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The sampled node ids, the seed first.

        Shapes:
            - output: ``(n_sampled,)``
        """
        seen = torch.zeros(self.graph.num_nodes, dtype=torch.bool)
        seen[seed] = True
        nodes, frontier = [torch.tensor([seed])], torch.tensor([seed])
        for _ in range(self.num_hops):
            starts, deg = self.ptr[frontier], self.ptr[frontier + 1] - self.ptr[frontier]
            if int(deg.sum()) == 0:
                break
            owner = torch.repeat_interleave(torch.arange(len(frontier)), deg)
            group_start = torch.repeat_interleave(torch.cumsum(deg, 0) - deg, deg)
            offset = torch.arange(int(deg.sum())) - group_start  # position inside each node's neighbour list
            cand = self.src[starts[owner] + offset]
            if self.num_neighbors >= 0:
                # a random order inside each node's list (sort by key, then stably by owner): keep the first k
                perm = torch.rand(len(cand), generator=generator).argsort()
                perm = perm[owner[perm].argsort(stable=True)]
                cand = cand[perm[offset < self.num_neighbors]]
            new = torch.unique(cand)
            new = new[~seen[new]]
            if len(new) == 0:
                break
            seen[new] = True
            nodes.append(new)
            frontier = new
        return torch.cat(nodes)

    def sample(self, seed: int, generator: torch.Generator | None = None) -> Data:
        """The induced subgraph on the sampled nodes, relabelled with the seed as node 0 (``center_index``)."""
        sub = self.graph.subgraph(self.nodes(seed, generator))
        sub.center_index = torch.tensor([0])
        if "y" in sub:
            del sub.y  # labels travel in the probes' LabeledSplit, never into pretraining
        return sub


class EgoGraphs(Dataset):
    """Seed nodes as samples: item ``i`` is the sampled neighbourhood of ``nodes[i]`` (see
    :class:`NeighborhoodSampler`).

    Args:
        sampler: the sampler over the full graph.
        nodes: the seed nodes.
        deterministic: draw each neighbourhood from a generator seeded by the node id (probes: the same
            inputs every time); otherwise from torch's global generator, which the trainer seeds per sample
            and epoch, so every epoch sees new neighbourhoods and a resumed run the same ones.
    """

    def __init__(self, sampler: NeighborhoodSampler, nodes: torch.Tensor, deterministic: bool = False) -> None:
        self.sampler, self.node_ids, self.deterministic = sampler, nodes.long(), deterministic

    def __len__(self) -> int:
        return len(self.node_ids)

    def __getitem__(self, i: int) -> Data:
        seed = int(self.node_ids[i])
        g = torch.Generator().manual_seed(seed) if self.deterministic else None
        return self.sampler.sample(seed, g)

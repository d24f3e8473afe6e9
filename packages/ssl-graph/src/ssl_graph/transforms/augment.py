"""Graph augmentations as PyG transforms (GraphCL; You et al., 2020, "Graph Contrastive Learning with
Augmentations", section 3.1; GRACE; Zhu et al., 2020).

Each transform takes a ``Data`` and returns a new one; randomness comes from torch's global generator,
which the trainer seeds per sample and epoch. Node-level samples (neighbourhoods with ``center_index``)
always keep their centre node. An augmentation never leaves a graph without nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from ssl_core.errors import ConfigError


def _center(data: Data) -> int | None:
    c = data.get("center_index")
    return None if c is None else int(c.view(-1)[0])


def _keep_nodes(data: Data, keep: torch.Tensor) -> Data:
    """The subgraph induced by the boolean node mask ``keep`` (centre node first when there is one)."""
    c = _center(data)
    if c is not None:
        keep[c] = True
    if not keep.any():
        keep[torch.randint(data.num_nodes, (1,))] = True
    idx = keep.nonzero().view(-1)
    if c is not None:  # the centre first, so center_index stays 0
        idx = torch.cat([idx.new_tensor([c]), idx[idx != c]])
    out = data.subgraph(idx)
    if c is not None:
        out.center_index = torch.tensor([0])
    return out


class DropEdges(BaseTransform):
    """Remove each undirected edge (both directions together) with probability ``p`` (GraphCL's edge
    perturbation without additions; GRACE's edge removal)."""

    def __init__(self, p: float = 0.2) -> None:
        self.p = p

    def forward(self, data: Data) -> Data:
        ei = data.edge_index
        if ei.shape[1] == 0 or self.p == 0:
            return data
        n = data.num_nodes
        key = torch.minimum(ei[0], ei[1]) * n + torch.maximum(ei[0], ei[1])  # one draw per undirected edge
        uniq, inv = torch.unique(key, return_inverse=True)
        keep = (torch.rand(len(uniq)) >= self.p)[inv]
        out = data.clone()
        out.edge_index = ei[:, keep]
        if data.get("edge_attr") is not None:
            out.edge_attr = data.edge_attr[keep]
        return out


class MaskFeatures(BaseTransform):
    """Zero node features with probability ``p``: whole feature columns (``per="column"``, GRACE) or
    whole nodes (``per="node"``, GraphCL's attribute masking)."""

    def __init__(self, p: float = 0.2, per: str = "column") -> None:
        if per not in ("column", "node"):
            raise ConfigError(f"MaskFeatures per must be column or node, got {per!r}")
        self.p, self.per = p, per

    def forward(self, data: Data) -> Data:
        if self.p == 0:
            return data
        out = data.clone()
        x = data.x
        if self.per == "column":
            out.x = x * (torch.rand(x.shape[1]) >= self.p).to(x.dtype)
        else:
            out.x = x * (torch.rand(x.shape[0], 1) >= self.p).to(x.dtype)
        return out


class DropNodes(BaseTransform):
    """Remove each node (with its edges) with probability ``p`` (GraphCL's node dropping)."""

    def __init__(self, p: float = 0.2) -> None:
        self.p = p

    def forward(self, data: Data) -> Data:
        if self.p == 0 or data.num_nodes <= 1:
            return data
        return _keep_nodes(data, torch.rand(data.num_nodes) >= self.p)


class SubgraphSample(BaseTransform):
    """Keep a connected part of about ``ratio`` of the nodes, grown by a random walk with restarts from a
    random start node (the centre for neighbourhoods), as GraphCL's subgraph augmentation."""

    def __init__(self, ratio: float = 0.8) -> None:
        self.ratio = ratio

    def forward(self, data: Data) -> Data:
        n = data.num_nodes
        target = max(1, round(self.ratio * n))
        if target >= n:
            return data
        c = _center(data)
        start = c if c is not None else int(torch.randint(n, (1,)))
        src, dst = data.edge_index
        keep = torch.zeros(n, dtype=torch.bool)
        keep[start] = True
        # grow the set by random frontier nodes: the neighbours of the kept nodes not yet kept
        for _ in range(n):
            if int(keep.sum()) >= target:
                break
            frontier = torch.unique(dst[keep[src] & ~keep[dst]])
            if len(frontier) == 0:  # the component is exhausted: jump to a random node elsewhere
                frontier = (~keep).nonzero().view(-1)
            keep[frontier[torch.randint(len(frontier), (1,))]] = True
        return _keep_nodes(data, keep)


class RandomChoice(BaseTransform):
    """Apply one transform drawn uniformly from ``transforms`` (GraphCL's "random" augmentation pool)."""

    def __init__(self, transforms: Sequence[BaseTransform]) -> None:
        if not transforms:
            raise ConfigError("RandomChoice needs at least one transform")
        self.transforms = list(transforms)

    def forward(self, data: Data) -> Data:
        return self.transforms[int(torch.randint(len(self.transforms), (1,)))](data)


AUGMENTATIONS = ("drop_nodes", "drop_edges", "subgraph", "mask_features", "mask_nodes", "none")


@dataclass
class AugmentConfig:
    """One view's augmentations, as data (``--set method.view1.pool=[drop_edges,mask_features]``).

    Args:
        pool: augmentations to draw from (one per graph when ``choose_one``, else all in order):
            ``drop_nodes``, ``drop_edges``, ``subgraph``, ``mask_features`` (columns), ``mask_nodes``
            (whole rows), ``none``.
        strength: the probability of dropping a node / an edge or, for ``subgraph``, the share of nodes removed.
        feature_strength: the masking probability of ``mask_features`` / ``mask_nodes`` (``None``: ``strength``).
        choose_one: draw one augmentation of the pool per graph (GraphCL) instead of applying them all (GRACE).
    """

    pool: list[str] = field(default_factory=lambda: ["drop_nodes", "subgraph", "drop_edges", "mask_nodes"])
    strength: float = 0.2
    feature_strength: float | None = None
    choose_one: bool = True

    def __post_init__(self) -> None:
        bad = [a for a in self.pool if a not in AUGMENTATIONS]
        if bad or not self.pool:
            raise ConfigError(f"augmentation pool must be a non-empty list of {', '.join(AUGMENTATIONS)}, got {bad}")
        for s in (self.strength, self.feature_strength):
            if s is not None and not 0 <= s < 1:
                raise ConfigError(f"augmentation strengths must lie in [0, 1), got {s}")


def grace_view(edge_p: float, feat_p: float) -> AugmentConfig:
    """GRACE's view (Zhu et al., 2020): remove edges with probability ``edge_p`` and mask feature columns with
    ``feat_p``, every node kept (also BGRL's views and ParetoGNN's node-contrast views)."""
    pool = ["drop_edges", "mask_features"]
    return AugmentConfig(pool=pool, strength=edge_p, feature_strength=feat_p, choose_one=False)


class Identity(BaseTransform):
    """The graph unchanged: a view without augmentation, and the pretext of methods that corrupt the batch in
    their forward pass (DGI, GraphMAE, link prediction, InfoGraph, SEENet)."""

    def forward(self, data: Data) -> Data:
        return data


def build_augment(cfg: AugmentConfig) -> BaseTransform:
    """The transform of one view."""
    s = cfg.strength
    f = s if cfg.feature_strength is None else cfg.feature_strength
    make = {
        "drop_nodes": lambda: DropNodes(s),
        "drop_edges": lambda: DropEdges(s),
        "subgraph": lambda: SubgraphSample(1 - s),
        "mask_features": lambda: MaskFeatures(f, "column"),
        "mask_nodes": lambda: MaskFeatures(f, "node"),
        "none": Identity,
    }
    ops = [make[a]() for a in cfg.pool]
    if cfg.choose_one:
        return RandomChoice(ops)
    from torch_geometric.transforms import Compose

    return Compose(ops)


class GraphViews:
    """Apply several view transforms to one graph; returns a tuple of views (picklable for workers)."""

    def __init__(self, transforms: Sequence[BaseTransform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, data: Data) -> tuple[Data, ...]:
        return tuple(t(data) for t in self.transforms)

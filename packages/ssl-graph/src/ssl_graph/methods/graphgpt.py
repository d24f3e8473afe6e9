"""GraphGPT (Zhao et al., 2023, "GraphGPT: Graph Learning with Generative Pre-trained Transformers"; seed 28).

Section 3 of the paper: each graph is serialised, reversibly, into tokens along a random Eulerian path
(:func:`ssl_graph.pretext.eulerian.serialize`: node-index tokens in order of first visit, node and edge
attribute tokens), and a transformer is pretrained on the sequences with either

- ``ntp``: next-token prediction, causal attention (the GPT objective); or
- ``smtp``: scheduled masked-token prediction, bidirectional attention (MaskGIT's objective, Chang et
  al., 2022): per sequence a mask ratio ``r = cos(pi / 2 * u)``, ``u ~ U(0, 1)``, is drawn, ``ceil(r * L)``
  of its ``L`` tokens are replaced by ``<mask>``, and the model predicts them.

A new random path is drawn for every sample and epoch, the method's augmentation. The graph embedding
for probes and export is the mean hidden state over the sequence of one fixed path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import Data

from ssl_core.errors import ConfigError
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_graph.data.graphs import GraphInfo
from ssl_graph.models.graph_transformer import (
    MASK,
    GraphTransformer,
    GraphTransformerConfig,
    build_vocab,
    graph_transformer_export_config,
    pad_sequences,
    tokenize,
)

OBJECTIVES = ("ntp", "smtp")


def ntp_loss(logits: torch.Tensor, ids: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
    """Next-token prediction: cross entropy of position ``t``'s logits against token ``t + 1``, padding ignored.

    Shapes:
        - logits: ``(B, T, V)``, ids / pad: ``(B, T)``; output: scalar
    """
    target = ids[:, 1:].masked_fill(pad[:, 1:], -100)
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100)


def smtp_mask(pad: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """MaskGIT's scheduled mask: per sequence ``r = cos(pi/2 * u)``, ``u ~ U(0,1)``, and ``ceil(r * L)`` of its
    ``L`` real tokens (at least one) chosen uniformly at random.

    Shapes:
        - pad: ``(B, T)`` True at padding; output: ``(B, T)`` True at masked tokens
    """
    b, t = pad.shape
    lengths = (~pad).sum(1)
    ratio = torch.cos(math.pi / 2 * torch.rand(b, generator=generator, device=pad.device))
    n_mask = (ratio * lengths).ceil().clamp(min=1).long()
    # rank the real tokens of each row in a random order; mask the first n_mask of them
    noise = torch.rand(b, t, generator=generator, device=pad.device).masked_fill(pad, 2.0)
    rank = noise.argsort(1).argsort(1)
    return rank < n_mask[:, None]


@dataclass
class GraphGPTConfig:
    """GraphGPT settings (``--set method.<name>=<value>``).

    Args:
        model: the transformer (``causal`` follows ``objective``).
        objective: ``ntp`` (next-token prediction) or ``smtp`` (scheduled masked-token prediction).
    """

    model: GraphTransformerConfig = field(default_factory=GraphTransformerConfig)
    objective: str = "ntp"

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"method.objective must be ntp or smtp, got {self.objective!r}")


class TokenizeGraph:
    """The pretext: one random Eulerian serialisation of the graph as token ids (picklable for workers)."""

    def __init__(self, model: GraphTransformer) -> None:
        self.index, self.max_len = model.index, model.config.max_len

    def __call__(self, graph: Data) -> torch.Tensor:
        return tokenize(graph, self.index, self.max_len)


class GraphGPT(Method):
    """GraphGPT: a transformer pretrained on Eulerian serialisations by next- or masked-token prediction.

    Shapes:
        - batch: ``(ids (B, T), pad (B, T))`` padded token ids
        - :meth:`embed`: a PyG batch of ``B`` graphs -> ``(B, dim)``
    """

    def __init__(self, config: GraphGPTConfig, info: GraphInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        vocab = build_vocab(info.num_features, info.edge_dim, info.max_nodes, info.attribute_tokens)
        model_cfg = replace(config.model, causal=config.objective == "ntp")
        self.backbone = GraphTransformer(model_cfg, vocab)
        self.lm_head = nn.Linear(model_cfg.dim, len(vocab))

    def pretext(self) -> TokenizeGraph:
        return TokenizeGraph(self.backbone)

    def collate(self):
        return pad_sequences

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> MethodOutput:
        ids, pad = batch
        if self.config.objective == "ntp":
            logits = self.lm_head(self.backbone.encode(ids, pad))  # (B, T, V)
            loss = ntp_loss(logits, ids, pad)
            return MethodOutput(loss, {})
        masked = smtp_mask(pad)
        inp = ids.masked_fill(masked, self.backbone.index[MASK])
        logits = self.lm_head(self.backbone.encode(inp, pad))
        loss = F.cross_entropy(logits[masked], ids[masked])
        return MethodOutput(loss, {"mask_ratio": masked.sum() / (~pad).sum()})

    def backbone_spec(self) -> BackboneSpec:
        return BackboneSpec(
            name="graph_transformer",
            config=graph_transformer_export_config(self.backbone),
            embed_dim=self.backbone.embed_dim,
            input={
                "level": self.info.level,
                "layout": "a torch_geometric Batch of undirected graphs with x (N, num_features); each is serialised "
                "along a fixed Eulerian path (ssl_graph.pretext.eulerian.serialize) and the hidden states averaged",
            },
        )

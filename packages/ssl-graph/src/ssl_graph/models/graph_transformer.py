"""A transformer over serialised graphs (GraphGPT's backbone; Zhao et al., 2023).

Graphs become token sequences through :func:`ssl_graph.pretext.eulerian.serialize`; this module owns the
vocabulary (special tokens, the two header tokens, node-index tokens ``n0 .. n<max_nodes-1>`` and the
attribute tokens seen in the data), a pre-norm transformer encoder with learned positions, and the
graph embedding: the mean of the final hidden states over the sequence. Called on a PyG ``Batch`` it
serialises each graph along one fixed (seeded) path, so the embedding of a graph is deterministic.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch_geometric.data import Batch, Data

from ssl_core.errors import ConfigError
from ssl_graph.pretext.eulerian import serialize

PAD, MASK, UNK = "<pad>", "<mask>", "<unk>"
SPECIAL = (PAD, "<bos>", "<eos>", "<jump>", "<rev>", MASK, UNK)


@dataclass
class GraphTransformerConfig:
    """Shape of a :class:`GraphTransformer` (``--set method.model.<name>=<value>``).

    Args:
        dim: model width.
        depth: transformer layers.
        heads: attention heads.
        max_len: longest token sequence; longer serialisations are cut (the cut is counted in the logs).
        dropout: dropout inside the transformer layers.
        causal: causal attention (next-token prediction) or bidirectional (masked-token prediction); set by
            the method's objective.
    """

    dim: int = 64
    depth: int = 3
    heads: int = 4
    max_len: int = 256
    dropout: float = 0.0
    causal: bool = True

    def __post_init__(self) -> None:
        if self.dim % self.heads:
            raise ConfigError(f"model.dim={self.dim} must be divisible by model.heads={self.heads}")
        if self.depth < 1 or self.max_len < 8:
            raise ConfigError("model.depth must be positive and model.max_len at least 8")


def build_vocab(num_features: int, edge_dim: int, max_nodes: int, attribute_tokens: list[str]) -> list[str]:
    """The token list of a data set: special tokens, headers, node indices, attribute tokens."""
    return [
        *SPECIAL,
        f"x_dim={num_features}",
        f"e_dim={edge_dim}",
        *(f"n{i}" for i in range(max_nodes)),
        *attribute_tokens,
    ]


class GraphTransformer(nn.Module):
    """Token embedding + learned positions + pre-norm transformer encoder; mean-pooled graph embeddings.

    Args:
        config: the shape.
        vocab: the token strings (:func:`build_vocab`); index 0 is ``<pad>``.

    Shapes:
        - :meth:`encode`: ``ids (B, T), pad (B, T) -> (B, T, dim)``
        - :meth:`forward`: a PyG ``Batch`` of ``B`` graphs -> ``(B, dim)``
    """

    def __init__(self, config: GraphTransformerConfig, vocab: list[str]) -> None:
        super().__init__()
        self.config, self.vocab = config, list(vocab)
        self.index = {t: i for i, t in enumerate(self.vocab)}
        if self.vocab[0] != PAD:
            raise ValueError("vocab[0] must be <pad>")
        c = config
        self.tok_emb = nn.Embedding(len(self.vocab), c.dim, padding_idx=0)
        self.pos_emb = nn.Parameter(torch.zeros(1, c.max_len, c.dim))
        nn.init.normal_(self.pos_emb, std=0.02)
        layer = nn.TransformerEncoderLayer(
            c.dim, c.heads, 4 * c.dim, c.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, c.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(c.dim)
        self.embed_dim = c.dim

    def encode(self, ids: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """Hidden states of a padded batch (``pad`` is True at padding), ``(B, T, dim)``."""
        t = ids.shape[1]
        h = self.tok_emb(ids) + self.pos_emb[:, :t]
        causal = None
        if self.config.causal:  # boolean like the padding mask: True where attention is not allowed
            causal = torch.ones(t, t, dtype=torch.bool, device=ids.device).triu(1)
        h = self.blocks(h, mask=causal, src_key_padding_mask=pad, is_causal=self.config.causal)
        return self.norm(h)

    def pool(self, h: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """Mean of the hidden states over the non-padding positions, ``(B, dim)``."""
        keep = (~pad).unsqueeze(-1).to(h.dtype)
        return (h * keep).sum(1) / keep.sum(1).clamp_min(1.0)

    def forward(self, batch: Batch) -> torch.Tensor:
        graphs = batch.to_data_list() if isinstance(batch, Batch) else [batch]
        # one fixed path per graph: the same graph always gets the same embedding
        gen = [torch.Generator().manual_seed(0) for _ in graphs]
        ids, pad = pad_sequences(
            [tokenize(g.cpu(), self.index, self.config.max_len, r) for g, r in zip(graphs, gen, strict=True)]
        )
        dev = self.tok_emb.weight.device
        ids, pad = ids.to(dev), pad.to(dev)
        return self.pool(self.encode(ids, pad), pad)


def tokenize(
    graph: Data, index: dict[str, int], max_len: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Serialise one graph along a random path (from ``generator``, else torch's global generator) and map
    its tokens to ids (``<unk>`` for tokens outside ``index``), cut to ``max_len``; ``(T,)`` long."""
    unk = index[UNK]
    ids = [index.get(t, unk) for t in serialize(graph, generator)]
    return torch.tensor(ids[:max_len], dtype=torch.long)


def pad_sequences(seqs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id sequences with 0 (``<pad>``): ``(ids (B, T), pad (B, T))``, ``pad`` True at padding."""
    t = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), t, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
    return ids, ids == 0


def build_graph_transformer(config: dict[str, Any]) -> GraphTransformer:
    """Registry builder: a :class:`GraphTransformer` from the ``config`` dict of an export."""
    cfg = dict(config)
    vocab = cfg.pop("vocab")
    return GraphTransformer(GraphTransformerConfig(**cfg), vocab)


def graph_transformer_export_config(model: GraphTransformer) -> dict[str, Any]:
    """The JSON-serialisable configuration (shape and vocabulary) :func:`build_graph_transformer` reads."""
    return {**asdict(model.config), "vocab": model.vocab}

"""Text probes beyond kNN / linear: docstring -> code retrieval (MRR@10), a
:attr:`ssl_core.data.DataBundle.extra_probes` column. The fine-tuning sample-efficiency curve is the core's
(:func:`ssl_core.eval.finetune_curve_probes`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ssl_core.eval.embed import embed_inputs
from ssl_core.eval.retrieval import mrr_at_k
from ssl_text.data.text import pad_batch


def retrieval_probe(queries: list[list[int]], targets: list[list[int]], k: int = 10) -> Callable:
    """An extra probe: MRR@k of each query's own target among all targets (held-out docstring -> code).

    Every row (pretrained, random init, TF-IDF) embeds queries and targets with its own function.

    Args:
        queries: token ids of each query (a docstring).
        targets: token ids of each query's target (its code), in the same order.
        k: the rank cut-off.

    Returns:
        ``(row_name, embed, device, backbone) -> MRR@k``, as :attr:`ssl_core.data.DataBundle.extra_probes` expects.
    """

    def probe(name: str, embed: Callable[[Any], torch.Tensor], device: Any, backbone: nn.Module | None) -> float:
        q = embed_inputs(embed, queries, 256, device, pad_batch)
        t = embed_inputs(embed, targets, 256, device, pad_batch)
        return mrr_at_k(q, t, k)

    return probe

"""Text probes beyond kNN / linear: docstring -> code retrieval (MRR@10) and the fine-tuning
sample-efficiency curve. Both are :attr:`ssl_core.data.DataBundle.extra_probes` columns."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.data import LabeledSplit
from ssl_core.eval.embed import embed_inputs, stratified_subset
from ssl_core.eval.linear import linear_probe
from ssl_core.eval.retrieval import mrr_at_k
from ssl_text.data.text import pad_batch


def retrieval_probe(queries: list[list[int]], targets: list[list[int]], k: int = 10) -> Callable:
    """An extra probe: MRR@k of each query's own target among all targets (held-out docstring -> code).

    Every row (pretrained, random init, TF-IDF) embeds queries and targets with its own function.
    """

    def probe(name: str, embed: Callable[[Any], torch.Tensor], device: Any) -> float:
        q = embed_inputs(embed, queries, 256, device, pad_batch)
        t = embed_inputs(embed, targets, 256, device, pad_batch)
        return mrr_at_k(q, t, k)

    return probe


def _encoder_of(embed: Callable) -> nn.Module | None:
    """The text backbone behind a method's bound ``embed`` (``None`` for the TF-IDF features)."""
    owner = getattr(embed, "__self__", None)
    return getattr(owner, "backbone", None)


def finetune_accuracy(
    encoder: nn.Module,
    train: LabeledSplit,
    test: LabeledSplit,
    num_classes: int,
    epochs: float = 2.0,
    lr: float = 3e-4,
    batch_size: int = 32,
    min_steps: int = 30,
    device: Any = "cpu",
    seed: int = 0,
) -> float:
    """Fine-tune a copy of ``encoder`` with a linear head on its mean-pooled embedding; test accuracy.

    AdamW with a linear decay over ``max(min_steps, epochs * N / batch_size)`` steps, as the usual
    fine-tuning recipes of BERT and GPT-2 classifiers.
    """
    torch.manual_seed(seed)
    model = copy.deepcopy(encoder).to(device).train()
    head = nn.Linear(model.embed_dim, num_classes).to(device)
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    steps = max(min_steps, math.ceil(epochs * len(train.labels) / batch_size))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / steps)
    g = torch.Generator().manual_seed(seed)
    n = len(train.labels)
    order = torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        if len(order) < batch_size:
            order = torch.cat([order, torch.randperm(n, generator=g)])
        idx, order = order[:batch_size], order[batch_size:]
        batch = {k: v.to(device) for k, v in pad_batch([train.inputs[i] for i in idx.tolist()]).items()}
        loss = F.cross_entropy(head(model(batch)), train.labels[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        pred = embed_inputs(lambda b: head(model(b)), test.inputs, 256, device, pad_batch).argmax(1)
    return (pred == test.labels).float().mean().item()


def finetune_curve_probes(cfg, labelled, bundle) -> dict[str, Callable]:
    """Extra probes ``finetune@<p>%``: accuracy after fine-tuning on a class-stratified ``p``% of (at most
    ``cfg.finetune_max_train`` of) the probe's training labels, for each of ``cfg.finetune_fractions`` -- the
    sample-efficiency curve of Xu et al. (2019). The TF-IDF row fits logistic regression on the same subsets."""
    train = stratified_subset(bundle.probe_train, cfg.finetune_max_train, cfg.seed)
    test = bundle.probe_test
    num_classes = len(labelled.classes)
    probes = {}
    for frac in cfg.finetune_fractions:
        subset = stratified_subset(train, max(num_classes, round(frac * len(train.labels))), cfg.seed)

        def probe(name: str, embed: Callable, device: Any, subset: LabeledSplit = subset) -> float | None:
            encoder = _encoder_of(embed)
            if encoder is None:  # the bag-of-words row: logistic regression on TF-IDF features
                x = embed_inputs(embed, subset.inputs, 512, "cpu", pad_batch)
                xt = embed_inputs(embed, test.inputs, 512, "cpu", pad_batch)
                if len(subset.labels.unique()) < 2 or len(subset.labels) < 10:
                    return None
                return linear_probe(x, subset.labels, xt, test.labels, seed=cfg.seed).top1
            return finetune_accuracy(
                encoder, subset, test, num_classes, cfg.finetune_epochs, device=device, seed=cfg.seed
            )

        probes[f"finetune@{100 * frac:g}%"] = probe
    return probes

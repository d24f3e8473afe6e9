"""Fine-tuning probes: train a copy of a backbone end to end with a linear head on few labels, then score it.

Unlike kNN and the linear probe, fine-tuning updates the backbone, so it needs the network itself, not its
embeddings; :func:`ssl_core.eval.embed.probe_table` hands each row's backbone to the extra probes built here.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.data import LabeledSplit
from ssl_core.errors import ConfigError
from ssl_core.eval.embed import embed_inputs, stratified_subset
from ssl_core.eval.linear import linear_probe
from ssl_core.train.data import to_device


def finetune_accuracy(
    backbone: nn.Module,
    train: LabeledSplit,
    test: LabeledSplit,
    num_classes: int,
    *,
    collate_fn: Callable | None = None,
    epochs: float = 2.0,
    lr: float = 3e-4,
    weight_decay: float = 0.01,
    batch_size: int = 32,
    min_steps: int = 30,
    embed_dim: int | None = None,
    device: Any = "cpu",
    seed: int = 0,
) -> float:
    """Fine-tune a copy of ``backbone`` with a linear head on ``train``; its top-1 accuracy on ``test``.

    The usual fine-tuning recipe of BERT and GPT-2 classifiers (Devlin et al., 2019; Radford et al., 2018):
    AdamW on backbone and head, the learning rate decaying linearly to 0 over
    ``max(min_steps, ceil(epochs * N / batch_size))`` steps, cross entropy on the head's logits. Batches are
    drawn from reshuffled passes over ``train`` (a generator seeded by ``seed``); ``seed`` also seeds torch's
    global generator, which initialises the head and drives dropout. ``backbone`` itself is left unchanged.

    Args:
        backbone: the network to fine-tune, a batch of collated inputs -> ``(B, embed_dim)``.
        train: labelled inputs to fine-tune on.
        test: labelled inputs to score.
        num_classes: outputs of the linear head.
        collate_fn: batches a list of inputs (``None``: torch's default collate).
        epochs: passes over ``train`` (at least ``min_steps`` steps are taken).
        lr: peak learning rate.
        weight_decay: AdamW's decoupled weight decay.
        batch_size: inputs per step.
        min_steps: the fewest optimizer steps, however small ``train`` is.
        embed_dim: width of the backbone's output (``None``: its ``embed_dim`` attribute).
        device: where to train.
        seed: seeds the head, dropout and the batch order.

    Shapes:
        - backbone: collated batch -> ``(B, embed_dim)``; labels: ``(N,)`` in ``[0, num_classes)``
        - output: a float in ``[0, 1]``
    """
    dim = embed_dim if embed_dim is not None else getattr(backbone, "embed_dim", None)
    if dim is None:
        raise ConfigError(
            f"finetune_accuracy: {type(backbone).__name__} has no embed_dim attribute; pass embed_dim= (the width "
            "of its output)"
        )
    torch.manual_seed(seed)
    model = copy.deepcopy(backbone).to(device).train()
    head = nn.Linear(dim, num_classes).to(device)
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    steps = max(min_steps, math.ceil(epochs * len(train.labels) / batch_size))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / steps)
    collate = collate_fn or torch.utils.data.default_collate
    g = torch.Generator().manual_seed(seed)
    n = len(train.labels)
    order = torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        if len(order) < batch_size:  # top up with a fresh pass, so every input is seen once per pass
            order = torch.cat([order, torch.randperm(n, generator=g)])
        idx, order = order[:batch_size], order[batch_size:]
        batch = to_device(collate([train.inputs[i] for i in idx.tolist()]), torch.device(device))
        loss = F.cross_entropy(head(model(batch)), train.labels[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        pred = embed_inputs(lambda b: head(model(b)), test.inputs, 256, device, collate_fn).argmax(1)
    return (pred == test.labels).float().mean().item()


def finetune_curve_probes(
    train: LabeledSplit,
    test: LabeledSplit,
    num_classes: int,
    fractions: Sequence[float],
    *,
    max_train: int | None = None,
    epochs: float = 1.0,
    collate_fn: Callable | None = None,
    seed: int = 0,
) -> dict[str, Callable[..., float | None]]:
    """Extra probe columns ``finetune@<p>%``: the sample-efficiency curve of fine-tuning (Xu et al., 2019).

    For each fraction ``p`` of ``fractions``, a class-stratified subset of ``p`` of (at most ``max_train`` of)
    ``train``, at least one input per class, fine-tunes each row's backbone (:func:`finetune_accuracy`) and is
    scored on ``test``. A row without a backbone (the raw-input baseline, e.g. TF-IDF features) fits the
    linear probe (logistic regression) on its features of the same subset instead, and gives no score when
    the subset has fewer than 10 inputs or a single class.

    Args:
        train: labelled inputs the subsets are drawn from.
        test: labelled inputs every row is scored on.
        num_classes: classes of the labels.
        fractions: fractions of the (capped) training inputs, each in ``(0, 1]``.
        max_train: the curve's 100%: a class-stratified subset of ``train`` of this size (``None``: all).
        epochs: passes over each subset (see :func:`finetune_accuracy`).
        collate_fn: batches a list of inputs.
        seed: seeds the subsets and the fine-tuning.

    Returns:
        ``{column: probe}``, each probe ``(row_name, embed, device, backbone) -> float | None`` as
        :attr:`ssl_core.data.DataBundle.extra_probes` expects.
    """
    if any(not 0 < f <= 1 for f in fractions):
        raise ConfigError(f"fine-tuning fractions must lie in (0, 1], got {list(fractions)}")
    capped = stratified_subset(train, max_train, seed)
    probes = {}
    for frac in fractions:
        subset = stratified_subset(capped, max(num_classes, round(frac * len(capped.labels))), seed)

        def probe(
            name: str, embed: Callable, device: Any, backbone: nn.Module | None, subset: LabeledSplit = subset
        ) -> float | None:
            if backbone is None:  # features without a network to tune: logistic regression on them
                if len(subset.labels.unique()) < 2 or len(subset.labels) < 10:
                    return None
                x = embed_inputs(embed, subset.inputs, 512, device, collate_fn)
                xt = embed_inputs(embed, test.inputs, 512, device, collate_fn)
                return linear_probe(x, subset.labels, xt, test.labels, seed=seed).top1
            return finetune_accuracy(
                backbone, subset, test, num_classes, collate_fn=collate_fn, epochs=epochs, device=device, seed=seed
            )

        probes[f"finetune@{100 * frac:g}%"] = probe
    return probes

r"""Prototypical probe: a few learned prototypes per class, matched against frozen patch tokens.

Bird-MAE (Rauch et al., 2025, "Can Masked Autoencoders Also Listen to Birds?") probes a frozen encoder
with prototypes instead of a linear layer on pooled features: a class shows in one patch (a call in a
few frames of a long recording) that mean pooling dilutes. Each class :math:`c` has :math:`J` learned
prototypes :math:`p_{c,j}`; a prototype's score is its best match over the :math:`T` patch tokens,

.. math::  s_{c,j}(x) = \max_t \cos(p_{c,j}, x_t),

its cosine similarity with the best-matching token (max pooling), and a class's logit is a learned
weighted **sum** of its own prototypes' scores plus a bias, :math:`z_c = \sum_j w_{c,j} s_{c,j} + b_c`
(weights start at 1, the plain sum). Prototypes (random at the start, as ProtoPNet's; Chen et al., 2019),
weights and biases are trained with cross-entropy and AdamW; the encoder stays frozen. Cosine similarity
makes a prototype a direction, so a score does not follow the tokens' norms; the dot product is not
offered for that reason.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def prototype_logits(
    tokens: torch.Tensor, prototypes: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    r"""Class logits :math:`z_c = \sum_j w_{c,j} \max_t \cos(p_{c,j}, x_t) + b_c` (see the module).

    Args:
        tokens: patch tokens of each sample.
        prototypes: ``J`` prototypes per class.
        weights: the weight of each prototype in its class's logit.
        bias: one bias per class.

    Shapes:
        - tokens: ``(B, T, D)``; prototypes: ``(C, J, D)``; weights: ``(C, J)``; bias: ``(C,)``
        - output: ``(B, C)``
    """
    tokens, prototypes = F.normalize(tokens, dim=-1), F.normalize(prototypes, dim=-1)
    sim = torch.einsum("btd,cjd->bcjt", tokens, prototypes)  # (B, C, J, T) cosine similarities
    scores = sim.amax(dim=-1)  # (B, C, J): max pooling over the tokens
    return (scores * weights).sum(dim=-1) + bias  # (B, C)


def prototypical_probe(
    train_tokens: torch.Tensor,
    train_y: torch.Tensor,
    test_tokens: torch.Tensor,
    test_y: torch.Tensor,
    prototypes_per_class: int = 5,
    steps: int = 300,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    batch_size: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> float:
    """Test accuracy of Bird-MAE's prototypical probe (see the module docstring) on frozen patch tokens.

    Fits ``prototypes_per_class`` prototypes per class, their weights and the class biases by cross-entropy
    with AdamW for ``steps`` steps (full batch, or mini-batches of ``batch_size`` drawn with ``seed``), then
    classifies the test samples by their largest logit. Any package whose backbone returns patch tokens
    (a ViT's tokens without the class token, an audio spectrogram's patches, a point cloud's groups) can be
    scored with it.

    Args:
        train_tokens, train_y: frozen tokens and labels to fit on.
        test_tokens, test_y: tokens and labels to score.
        prototypes_per_class: ``J``, learned prototypes per class.
        steps: AdamW steps.
        lr: AdamW learning rate (constant).
        weight_decay: AdamW weight decay.
        batch_size: samples per step (``None``: the whole training set).
        seed: seeds the prototypes' initialisation (standard normal) and the mini-batches.
        device: where to train.

    Returns:
        Top-1 accuracy on the test set (a fraction in [0, 1]).

    Shapes:
        - train_tokens: ``(N, T, D)``, train_y: ``(N,)``, test_tokens: ``(M, T', D)``, test_y: ``(M,)``
    """
    if train_tokens.ndim != 3 or test_tokens.ndim != 3 or train_tokens.shape[-1] != test_tokens.shape[-1]:
        raise ValueError(
            f"expected (N, T, D) and (M, T', D) tokens, got {tuple(train_tokens.shape)} and {tuple(test_tokens.shape)}"
        )
    if len(train_tokens) != len(train_y) or len(test_tokens) != len(test_y) or not len(train_y) or not len(test_y):
        raise ValueError("need one label per sample, and at least one training and one test sample")
    if prototypes_per_class < 1 or steps < 1:
        raise ValueError(f"prototypes_per_class and steps must be positive, got {prototypes_per_class} and {steps}")
    device = torch.device(device)
    y, yt = train_y.long(), test_y.long()
    num_classes = int(max(y.max(), yt.max())) + 1
    g = torch.Generator().manual_seed(seed)
    x = train_tokens.float()
    protos = torch.randn(num_classes, prototypes_per_class, x.shape[-1], generator=g).to(device).requires_grad_(True)
    weights = torch.ones(num_classes, prototypes_per_class, device=device, requires_grad=True)
    bias = torch.zeros(num_classes, device=device, requires_grad=True)
    opt = torch.optim.AdamW([protos, weights, bias], lr=lr, weight_decay=weight_decay)
    x, y = x.to(device), y.to(device)
    with torch.enable_grad():
        for _ in range(steps):
            batch = slice(None) if batch_size is None else torch.randint(len(x), (batch_size,), generator=g).to(device)
            loss = F.cross_entropy(prototype_logits(x[batch], protos, weights, bias), y[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    correct = 0
    with torch.no_grad():
        for lo in range(0, len(test_tokens), 256):  # chunks bound the (B, C, J, T) similarity tensor
            xt = test_tokens[lo : lo + 256].float().to(device)
            pred = prototype_logits(xt, protos, weights, bias).argmax(dim=1).cpu()
            correct += int((pred == yt[lo : lo + 256]).sum())
    return correct / len(yt)

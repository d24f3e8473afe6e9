"""Weighted k-nearest-neighbour probe (Wu et al., 2018; the protocol of DINO and lightly)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssl_core.eval._checks import check_embeddings


def knn_predict(
    train_emb: torch.Tensor,
    train_y: torch.Tensor,
    test_emb: torch.Tensor,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
    chunk_size: int = 1024,
) -> torch.Tensor:
    r"""Predict classes by temperature-weighted votes of the ``k`` most cosine-similar training samples.

    Neighbour :math:`j` of a test sample votes for its class with weight :math:`\exp(s_j / T)`, where
    :math:`s_j` is the cosine similarity. Test samples are processed in chunks, so memory is
    ``O(chunk_size * N_train)``.

    Args:
        train_emb: embeddings of the labelled samples.
        train_y: their integer labels in ``[0, num_classes)``.
        test_emb: embeddings to classify.
        k: neighbours per query (capped at the number of training samples); 20 as in DINO.
        temperature: :math:`T`; 0.07 as in DINO and InstDisc.
        num_classes: number of classes (default: ``train_y.max() + 1``).
        chunk_size: test samples per similarity block.

    Shapes:
        - train_emb: ``(N, D)``, train_y: ``(N,)``, test_emb: ``(M, D)``
        - output: ``(M,)`` predicted labels
    """
    check_embeddings(train_emb, test_emb)
    if len(train_emb) != len(train_y) or len(train_emb) == 0:
        raise ValueError(f"need as many labels as training embeddings (>0), got {len(train_y)} for {len(train_emb)}")
    num_classes = int(train_y.max()) + 1 if num_classes is None else num_classes
    k = min(k, len(train_emb))
    train = F.normalize(train_emb.float(), dim=1)
    test = F.normalize(test_emb.float(), dim=1)
    train_y = train_y.long()
    preds = []
    for lo in range(0, len(test), chunk_size):
        sim = test[lo : lo + chunk_size] @ train.T  # (c, N)
        top_sim, top_idx = sim.topk(k, dim=1)  # (c, k)
        votes = torch.zeros(len(top_sim), num_classes, dtype=top_sim.dtype)
        votes.scatter_add_(1, train_y[top_idx], (top_sim / temperature).exp())
        preds.append(votes.argmax(dim=1))
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)


def knn_accuracy(
    train_emb: torch.Tensor,
    train_y: torch.Tensor,
    test_emb: torch.Tensor,
    test_y: torch.Tensor,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
) -> float:
    """Top-1 accuracy (a fraction in [0, 1]) of :func:`knn_predict` on ``(test_emb, test_y)``.

    Shapes:
        - train_emb: ``(N, D)``, train_y: ``(N,)``, test_emb: ``(M, D)``, test_y: ``(M,)``
    """
    if len(test_emb) != len(test_y) or len(test_y) == 0:
        raise ValueError(f"need as many test labels as test embeddings (>0), got {len(test_y)} for {len(test_emb)}")
    if num_classes is None:
        num_classes = int(max(train_y.max(), test_y.max())) + 1
    pred = knn_predict(train_emb, train_y, test_emb, k, temperature, num_classes)
    return (pred == test_y.long()).float().mean().item()

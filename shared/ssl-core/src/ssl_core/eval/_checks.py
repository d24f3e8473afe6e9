"""The input check every probe on embeddings starts with."""

from __future__ import annotations

import torch


def check_embeddings(
    train_emb: torch.Tensor,
    test_emb: torch.Tensor,
    train_y: torch.Tensor | None = None,
    test_y: torch.Tensor | None = None,
) -> None:
    """Raise ``ValueError`` unless the embeddings are matrices of one width with one label each (labels given).

    Shapes:
        - train_emb: ``(N, D)``, test_emb: ``(M, D)``, train_y: ``(N,)``, test_y: ``(M,)``
    """
    if train_emb.ndim != 2 or test_emb.ndim != 2 or train_emb.shape[1] != test_emb.shape[1]:
        raise ValueError(
            f"expected (N, D) and (M, D) embeddings, got {tuple(train_emb.shape)} and {tuple(test_emb.shape)}"
        )
    if (train_y is not None and len(train_emb) != len(train_y)) or (
        test_y is not None and len(test_emb) != len(test_y)
    ):
        raise ValueError("need one label per embedding")

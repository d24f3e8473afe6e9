"""The per-run picture of a representation: a 2-D t-SNE map of test embeddings coloured by class."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssl_core.data import LabeledSplit
from ssl_core.eval.embed import embed_inputs, stratified_subset
from ssl_core.io import atomic_write

EMBEDDINGS_PLOT = "embeddings.png"


def tsne_2d(embeddings: torch.Tensor, seed: int = 0, perplexity: float = 30.0, max_iter: int = 500) -> np.ndarray:
    """Map embeddings to 2-D with t-SNE (van der Maaten and Hinton, 2008), scikit-learn's implementation.

    Embeddings are L2-normalised first, so distances are the cosine geometry the kNN probe uses.

    Args:
        embeddings: one row per sample.
        seed: seeds t-SNE's initialisation.
        perplexity: t-SNE's effective number of neighbours (capped below the number of samples).
        max_iter: optimisation steps (at least 250); 500 keeps 2,000 points at about 2.5 s on 2 cores.

    Shapes:
        - embeddings: ``(N, D)`` with ``N >= 3``
        - output: ``(N, 2)``; all zeros when every embedding is the same (a collapsed representation)
    """
    from sklearn.manifold import TSNE

    n = len(embeddings)
    if n < 3:
        raise ValueError(f"t-SNE needs at least 3 samples, got {n}")
    x = torch.nn.functional.normalize(embeddings.float(), dim=1).numpy()
    if float(np.ptp(x, axis=0).max()) < 1e-6:
        # a collapsed representation (every sample embedded alike) is one point; scikit-learn's Barnes-Hut
        # t-SNE crashes the process on identical rows instead of raising
        return np.zeros((n, 2), dtype=np.float32)
    tsne = TSNE(2, perplexity=min(perplexity, (n - 1) / 3), init="pca", random_state=seed, max_iter=max_iter)
    return tsne.fit_transform(x)


def plot_embedding_map(
    points: np.ndarray,
    labels: torch.Tensor | np.ndarray,
    path: str | Path,
    title: str = "",
    class_names: Sequence[str] | None = None,
) -> Path:
    """Scatter 2-D points coloured by class and save the figure (PNG).

    Shapes:
        - points: ``(N, 2)``; labels: ``(N,)`` integers
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = np.asarray(labels)
    classes = np.unique(labels)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(6, 6), dpi=120)
    for i, c in enumerate(classes):
        sel = labels == c
        name = class_names[int(c)] if class_names is not None and int(c) < len(class_names) else str(int(c))
        ax.scatter(points[sel, 0], points[sel, 1], s=4, alpha=0.7, color=cmap(i % cmap.N), label=name)
    if len(classes) <= 20:
        ax.legend(markerscale=3, fontsize=7, loc="best", frameon=False)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_write(path, fsync=False) as tmp:  # a plot is redrawn by `selfsup eval`; no need to flush
            fig.savefig(tmp)
    finally:
        plt.close(fig)
    return path


def plot_test_embeddings(
    embed_fn: Callable[[Any], torch.Tensor],
    split: LabeledSplit,
    path: str | Path,
    size: int = 2000,
    seed: int = 0,
    device: torch.device | str = "cpu",
    collate_fn: Callable | None = None,
    title: str = "",
    embeddings: torch.Tensor | None = None,
) -> Path:
    """Embed a class-stratified subset of ``size`` test inputs, map them with :func:`tsne_2d` and save the
    scatter plot (a few seconds for 2,000 points), its legend naming the split's ``class_names`` when it has them.

    Args:
        embed_fn: batch of inputs -> embeddings (e.g. ``method.embed``).
        split: the labelled test inputs.
        path: the PNG to write (e.g. ``<run>/plots/embeddings.png``).
        size: samples to plot (class-stratified, drawn with ``seed``).
        device: where ``embed_fn`` computes.
        collate_fn: how to batch the inputs.
        title: the start of the figure title (the number of points and "t-SNE" follow).
        embeddings: the embeddings of the whole split, when they are at hand (then nothing is embedded).

    Shapes:
        - embeddings: ``(len(split.inputs), D)``
    """
    sub = stratified_subset(split, size, seed)
    if embeddings is not None:
        emb = embeddings if sub is split else embeddings[torch.as_tensor(sub.inputs.indices)]
    else:
        emb = embed_inputs(embed_fn, sub.inputs, device=device, collate_fn=collate_fn)
    title = f"{title}: " if title else ""
    return plot_embedding_map(
        tsne_2d(emb, seed),
        sub.labels,
        path,
        title=f"{title}t-SNE of {len(emb):,} test embeddings",
        class_names=split.class_names,
    )

"""Few-shot probe: n-way k-shot episodes on frozen embeddings, mean accuracy and its 95% interval.

The episodes are those of the few-shot evaluation on ModelNet40 of Point-BERT (Yu et al., 2022) and
Point-MAE (Pang et al., 2022): each draws ``n_way`` classes, ``k_shot`` labelled support samples of each
from the training set and ``n_query`` query samples of each (20 in their protocol) from the test set; a
classifier fitted on the support scores the queries. Where those papers fine-tune the whole network on
the support, this probe keeps the backbone frozen and fits a linear SVM on the embeddings (scikit-learn's
``LinearSVC`` with its defaults, the classifier of Point-MAE's linear-SVM evaluation) or a nearest-prototype
classifier (class means, cosine similarity; Snell et al., 2017, "Prototypical Networks for Few-shot
Learning"). The score is the mean query accuracy over episodes with its 95% confidence interval
``1.96 * std / sqrt(episodes)``, as few-shot papers report it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ssl_core.eval._checks import check_embeddings

CLASSIFIERS = ("svm", "prototype")


@dataclass
class FewShotResult:
    """Outcome of :func:`few_shot_accuracy`.

    Args:
        mean: mean query accuracy over the episodes (a fraction in [0, 1]).
        ci95: half-width of the 95% confidence interval of ``mean``: ``1.96 * std / sqrt(episodes)``.
        std: standard deviation (``ddof=1``) of the episode accuracies (Point-MAE reports mean ± std).
        accuracies: the query accuracy of each episode.
    """

    mean: float
    ci95: float
    std: float
    accuracies: list[float]


@dataclass
class Episode:
    """One n-way k-shot episode: indices into the training and test embeddings, and episode labels
    ``0 .. n_way - 1`` (the position of each sample's class among the drawn ``classes``).

    Shapes:
        - support, support_y: ``(n_way * k_shot,)``; query, query_y: ``(n_way * n_query,)``; classes: ``(n_way,)``
    """

    classes: torch.Tensor
    support: torch.Tensor
    support_y: torch.Tensor
    query: torch.Tensor
    query_y: torch.Tensor


def few_shot_episodes(
    train_y: torch.Tensor,
    test_y: torch.Tensor,
    n_way: int,
    k_shot: int,
    episodes: int,
    n_query: int = 20,
    seed: int = 0,
) -> Iterator[Episode]:
    """Draw the episodes of :func:`few_shot_accuracy` (see there), from one generator seeded with ``seed``.

    Each episode draws ``n_way`` distinct classes uniformly among the classes of ``train_y`` and ``test_y``,
    then, per class in the drawn order, ``k_shot`` training samples and ``n_query`` test samples without
    replacement.

    Raises:
        ValueError: when ``n_way`` exceeds the number of classes, or a class has fewer than ``k_shot``
            training or ``n_query`` test samples (naming the class, its counts, and what to lower).

    Shapes:
        - train_y: ``(N,)``, test_y: ``(M,)`` integer class labels
    """
    if min(n_way, k_shot, n_query, episodes) < 1:
        raise ValueError(
            f"n_way, k_shot, n_query and episodes must be positive, got {n_way}, {k_shot}, {n_query}, {episodes}"
        )
    train_y, test_y = train_y.long(), test_y.long()
    classes = torch.cat([train_y, test_y]).unique()
    if n_way > len(classes):
        raise ValueError(f"{n_way}-way episodes need {n_way} classes, but the labels hold {len(classes)}; lower n_way")
    train_idx = {int(c): (train_y == c).nonzero().squeeze(1) for c in classes}
    test_idx = {int(c): (test_y == c).nonzero().squeeze(1) for c in classes}
    short = [c for c in classes.tolist() if len(train_idx[c]) < k_shot or len(test_idx[c]) < n_query]
    if short:
        counts = ", ".join(f"class {c} has {len(train_idx[c])} and {len(test_idx[c])}" for c in short)
        raise ValueError(
            f"{k_shot}-shot episodes with {n_query} queries per class need {k_shot} training and {n_query} test "
            f"samples of every class, but {counts}; lower k_shot or n_query, or leave those classes out"
        )
    g = torch.Generator().manual_seed(seed)
    for _ in range(episodes):
        drawn = classes[torch.randperm(len(classes), generator=g)[:n_way]]
        support, query = [], []
        for c in drawn.tolist():
            support.append(train_idx[c][torch.randperm(len(train_idx[c]), generator=g)[:k_shot]])
            query.append(test_idx[c][torch.randperm(len(test_idx[c]), generator=g)[:n_query]])
        ways = torch.arange(n_way)
        yield Episode(
            drawn, torch.cat(support), ways.repeat_interleave(k_shot), torch.cat(query), ways.repeat_interleave(n_query)
        )


def nearest_prototype_predict(support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Classify each query as the class whose mean support embedding is the most cosine-similar
    (Snell et al., 2017, with cosine similarity on L2-normalised embeddings).

    Shapes:
        - support: ``(S, D)``, support_y: ``(S,)`` in ``[0, C)`` with every class present, query: ``(Q, D)``
        - output: ``(Q,)`` predicted classes
    """
    support = F.normalize(support.float(), dim=1)
    num_classes = int(support_y.max()) + 1
    sums = torch.zeros(num_classes, support.shape[1]).index_add_(0, support_y.long(), support)
    prototypes = F.normalize(sums / torch.bincount(support_y.long(), minlength=num_classes)[:, None], dim=1)
    return (F.normalize(query.float(), dim=1) @ prototypes.T).argmax(dim=1)  # (Q, C) -> (Q,)


def svm_predict(
    support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor, c: float = 1.0, seed: int = 0
) -> torch.Tensor:
    """Classify each query with scikit-learn's ``LinearSVC(C=c)`` fitted on the support (one-vs-rest, squared
    hinge loss; Point-MAE's linear-SVM classifier, on the embeddings as they are).

    Shapes:
        - support: ``(S, D)``, support_y: ``(S,)``, query: ``(Q, D)``
        - output: ``(Q,)`` predicted classes
    """
    from sklearn.svm import LinearSVC

    clf = LinearSVC(C=c, random_state=seed).fit(support.double().numpy(), support_y.numpy())
    return torch.from_numpy(clf.predict(query.double().numpy())).long()


def few_shot_accuracy(
    train_emb: torch.Tensor,
    train_y: torch.Tensor,
    test_emb: torch.Tensor,
    test_y: torch.Tensor,
    n_way: int = 5,
    k_shot: int = 10,
    episodes: int = 10,
    n_query: int = 20,
    classifier: str = "svm",
    svm_c: float = 1.0,
    seed: int = 0,
) -> FewShotResult:
    """Mean n-way k-shot accuracy over ``episodes`` episodes, with its 95% confidence interval.

    The few-shot protocol of Point-BERT and Point-MAE (see the module docstring) on frozen embeddings: each
    episode (:func:`few_shot_episodes`) fits a classifier on ``n_way * k_shot`` support embeddings from the
    training set and scores ``n_way * n_query`` query embeddings from the test set. Point-MAE's settings are
    5 or 10 ways, 10 or 20 shots, 20 queries and 10 episodes.

    Args:
        train_emb, train_y: labelled embeddings the support samples are drawn from.
        test_emb, test_y: labelled embeddings the query samples are drawn from.
        n_way: classes per episode.
        k_shot: support samples per class.
        episodes: episodes drawn (at least 2, for the interval).
        n_query: query samples per class.
        classifier: ``svm`` (:func:`svm_predict`) or ``prototype`` (:func:`nearest_prototype_predict`).
        svm_c: the SVM's ``C``.
        seed: seeds the episodes (one ``torch.Generator``) and the SVM.

    Shapes:
        - train_emb: ``(N, D)``, train_y: ``(N,)``, test_emb: ``(M, D)``, test_y: ``(M,)``
    """
    check_embeddings(train_emb, test_emb, train_y, test_y)
    if classifier not in CLASSIFIERS:
        raise ValueError(f"classifier must be one of {', '.join(CLASSIFIERS)}, got {classifier!r}")
    if episodes < 2:
        raise ValueError(f"a 95% interval needs at least 2 episodes, got {episodes}")
    accuracies = []
    for ep in few_shot_episodes(train_y, test_y, n_way, k_shot, episodes, n_query, seed):
        support, query = train_emb[ep.support], test_emb[ep.query]
        if classifier == "svm":
            pred = svm_predict(support, ep.support_y, query, svm_c, seed)
        else:
            pred = nearest_prototype_predict(support, ep.support_y, query)
        accuracies.append((pred == ep.query_y).float().mean().item())
    acc = torch.tensor(accuracies, dtype=torch.float64)
    std = acc.std().item()  # ddof=1
    return FewShotResult(acc.mean().item(), 1.96 * std / math.sqrt(len(acc)), std, accuracies)

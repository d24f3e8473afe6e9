"""Cross-validated probe: k-fold accuracy of a linear classifier on frozen embeddings.

This is the graph-level protocol of InfoGraph (Sun et al., 2020) and GraphMAE (Hou et al., 2022): with
data sets of a few hundred graphs there is no meaningful fixed test split, so the labelled embeddings
are split into ``folds`` stratified folds; each fold is scored by a classifier fitted on the others,
its regularisation ``C`` chosen by an inner stratified cross-validation on the training folds only;
the result is the mean (and standard deviation) of the fold accuracies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

CLASSIFIERS = ("svm", "svm_rbf", "logreg")
DEFAULT_C = (1e-3, 1e-2, 1e-1, 1.0, 10.0)  # GraphMAE's grid


@dataclass
class CrossValResult:
    """Outcome of :func:`cross_val_accuracy`.

    Args:
        mean: mean test accuracy over the folds (a fraction in [0, 1]).
        std: standard deviation of the fold accuracies.
        fold_top1: accuracy of each outer fold.
        chosen_c: the ``C`` the inner cross-validation chose in each outer fold.
    """

    mean: float
    std: float
    fold_top1: list[float]
    chosen_c: list[float]


def _classifier(kind: str, c: float, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if kind == "svm_rbf":  # GraphMAE's exact classifier: an RBF SVC on the raw embeddings
        return make_pipeline(SVC(C=c, random_state=seed))
    # standardised inputs: embeddings of different methods have very different scales, and C is a grid
    if kind == "svm":
        clf = SVC(kernel="linear", C=c, random_state=seed)
    else:
        clf = LogisticRegression(C=c, max_iter=2000)
    return make_pipeline(StandardScaler(), clf)


def cross_val_accuracy(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    folds: int = 10,
    classifier: str = "svm",
    c_grid: tuple[float, ...] = DEFAULT_C,
    inner_folds: int = 5,
    seed: int = 0,
) -> CrossValResult:
    """Stratified k-fold accuracy of a linear SVM or logistic regression on frozen embeddings.

    From InfoGraph (Sun et al., 2020) and GraphMAE (Hou et al., 2022, ``evaluate_graph_embeddings_using_svm``):
    10 stratified folds, shuffled with ``seed``; in each, ``C`` is picked from ``c_grid`` by an inner
    ``inner_folds``-fold cross-validation on the training folds (never on the test fold), the classifier is
    refitted on all training folds and scored on the test fold. GraphMAE uses an RBF ``SVC``; the linear
    kernel (``"svm"``, on standardised embeddings) is the "linear probe" reading of the protocol;
    ``"svm_rbf"`` is GraphMAE's RBF ``SVC`` on the raw embeddings.

    Args:
        embeddings: one row per sample.
        labels: integer classes.
        folds: outer folds (10 in the papers); capped by the smallest class size.
        classifier: ``"svm"`` (``SVC(kernel="linear")``), ``"svm_rbf"`` (``SVC()``) or ``"logreg"``
            (``LogisticRegression``).
        c_grid: inverse regularisation strengths to choose from.
        inner_folds: folds of the inner selection of ``C`` (capped by the smallest class in the training folds).
        seed: seeds the fold assignment.

    Shapes:
        - embeddings: ``(N, D)``, labels: ``(N,)``
    """
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    if classifier not in CLASSIFIERS:
        raise ValueError(f"classifier must be one of {', '.join(CLASSIFIERS)}, got {classifier!r}")
    if embeddings.ndim != 2 or len(embeddings) != len(labels):
        raise ValueError(f"expected (N, D) embeddings and N labels, got {tuple(embeddings.shape)} and {len(labels)}")
    if not c_grid:
        raise ValueError("c_grid must not be empty")
    x = embeddings.double().numpy()
    y = labels.long().numpy()
    _, counts = np.unique(y, return_counts=True)
    if len(counts) < 2:
        raise ValueError("cross-validation needs at least two classes")
    k = min(folds, int(counts.min()))
    if k < 2:
        raise ValueError(f"the smallest class has {counts.min()} sample(s); need at least 2 for cross-validation")
    outer = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    accs, chosen = [], []
    for tr, te in outer.split(x, y):
        _, tr_counts = np.unique(y[tr], return_counts=True)
        k_in = min(inner_folds, int(tr_counts.min()))
        if len(c_grid) > 1 and k_in >= 2:
            search = GridSearchCV(
                _classifier(classifier, 1.0, seed),
                {f"{'logisticregression' if classifier == 'logreg' else 'svc'}__C": list(c_grid)},
                cv=StratifiedKFold(n_splits=k_in, shuffle=True, random_state=seed),
                refit=False,
            )
            search.fit(x[tr], y[tr])
            c = float(next(iter(search.best_params_.values())))
        else:
            c = float(c_grid[0])
        model = _classifier(classifier, c, seed).fit(x[tr], y[tr])
        accs.append(float((model.predict(x[te]) == y[te]).mean()))
        chosen.append(c)
    return CrossValResult(float(np.mean(accs)), float(np.std(accs)), accs, chosen)

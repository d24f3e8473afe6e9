"""Probe settings."""

from __future__ import annotations

from dataclasses import dataclass

from ssl_core.errors import ConfigError


@dataclass
class ProbeConfig:
    """How a run's representation is scored after pretraining (``--set probe.<name>=<value>``).

    Args:
        enabled: run the probes at the end of ``selfsup pretrain``.
        k: neighbours of the kNN probe (20 as in DINO and lightly).
        knn_temperature: vote temperature of the kNN probe (0.07).
        linear: also fit the linear probe.
        train_size: labelled training samples the probes use: a class-stratified random subset of this
            size, drawn with ``seed`` (``None``: all). The test split is always used whole.
        batch_size: samples per batch when embedding.
        seed: seeds the subset, the linear probe's held-out split and the cross-validation folds.
        cv_folds: also score each row by ``cv_folds``-fold cross-validation on all labelled inputs (training
            and test splits together; :func:`ssl_core.eval.crossval.cross_val_accuracy`), the protocol of
            small graph data sets (InfoGraph, GraphMAE: 10). ``0``: off.
        cv_classifier: the classifier of that probe, ``svm`` (linear SVM), ``svm_rbf`` (GraphMAE's RBF SVM) or
            ``logreg``.
        cache: reuse the scores of a row whose embeddings, labels and settings equal an earlier row's (the
            untrained backbone and the raw input of every run of a recipe; :mod:`ssl_core.eval.cache`).
    """

    enabled: bool = True
    k: int = 20
    knn_temperature: float = 0.07
    linear: bool = True
    train_size: int | None = None
    batch_size: int = 512
    seed: int = 0
    cv_folds: int = 0
    cv_classifier: str = "svm"
    cache: bool = True

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"probe.k must be positive, got {self.k}")
        if self.knn_temperature <= 0:
            raise ConfigError(f"probe.knn_temperature must be positive, got {self.knn_temperature}")
        if self.train_size is not None and self.train_size < 2:
            raise ConfigError(f"probe.train_size must be at least 2, got {self.train_size}")
        if self.batch_size < 1:
            raise ConfigError(f"probe.batch_size must be positive, got {self.batch_size}")
        if self.cv_folds < 0 or self.cv_folds == 1:
            raise ConfigError(f"probe.cv_folds must be 0 (off) or at least 2, got {self.cv_folds}")
        if self.cv_classifier not in ("svm", "svm_rbf", "logreg"):
            raise ConfigError(f"probe.cv_classifier must be svm, svm_rbf or logreg, got {self.cv_classifier!r}")

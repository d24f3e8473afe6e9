import numpy as np
import pytest
import torch

from ssl_core.errors import ConfigError
from ssl_core.eval import cross_val_accuracy, format_table
from ssl_core.eval.config import ProbeConfig


def _clusters(n_per_class=30, classes=3, dim=5, spread=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(classes).repeat_interleave(n_per_class)
    x = torch.randn(classes, dim, generator=g)[y] * 3 + spread * torch.randn(len(y), dim, generator=g)
    return x, y


@pytest.mark.parametrize("classifier", ["svm", "svm_rbf", "logreg"])
def test_matches_scikit_learn_nested_cross_validation(classifier):
    """Same folds, same inner selection of C: scikit-learn's cross_val_score over a GridSearchCV gives the
    same fold accuracies."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    x, y = _clusters(spread=3.0)
    grid = (0.01, 1.0, 100.0)
    ours = cross_val_accuracy(x, y, folds=5, classifier=classifier, c_grid=grid, inner_folds=3, seed=7)
    clf = {
        "svm": SVC(kernel="linear", random_state=7),
        "svm_rbf": SVC(random_state=7),
        "logreg": LogisticRegression(max_iter=2000),
    }[classifier]
    step = "logisticregression" if classifier == "logreg" else "svc"
    search = GridSearchCV(
        make_pipeline(clf) if classifier == "svm_rbf" else make_pipeline(StandardScaler(), clf),
        {f"{step}__C": list(grid)},
        cv=StratifiedKFold(3, shuffle=True, random_state=7),
    )
    theirs = cross_val_score(search, x.double().numpy(), y.numpy(), cv=StratifiedKFold(5, shuffle=True, random_state=7))
    np.testing.assert_allclose(ours.fold_top1, theirs)
    assert ours.mean == pytest.approx(theirs.mean()) and ours.std == pytest.approx(theirs.std())
    assert all(c in grid for c in ours.chosen_c)


def test_separable_and_random():
    x, y = _clusters(spread=0.3)
    assert cross_val_accuracy(x, y).mean == 1.0
    torch.manual_seed(0)
    noise = torch.randn(len(y), 5)
    assert cross_val_accuracy(noise, y, c_grid=(1.0,)).mean < 0.6  # three classes: chance is 1/3


def test_folds_capped_by_the_smallest_class_and_bad_input():
    x, y = _clusters(n_per_class=4, classes=2)
    r = cross_val_accuracy(x, y, folds=10)
    assert len(r.fold_top1) == 4
    with pytest.raises(ValueError, match="at least two classes"):
        cross_val_accuracy(x, torch.zeros(len(x)))
    with pytest.raises(ValueError, match="at least 2"):
        cross_val_accuracy(x[:5], torch.tensor([0, 0, 0, 0, 1]))
    with pytest.raises(ValueError, match="classifier"):
        cross_val_accuracy(x, y, classifier="rbf")
    with pytest.raises(ConfigError, match="cv_folds"):
        ProbeConfig(cv_folds=1)


def test_table_shows_the_cross_validated_column():
    text = format_table({"pretrained": {"knn_top1": 0.5, "linear_top1": 0.6, "cv_top1": 0.8819, "cv_std": 0.0126}})
    assert "cross-val" in text and "88.19 ± 1.26%" in text
    assert "cross-val" not in format_table({"pretrained": {"knn_top1": 0.5, "linear_top1": 0.6}})

"""Few-shot probe: the episodes of Point-MAE's protocol, against a naive implementation."""

import math
import statistics

import numpy as np
import pytest
import torch

from ssl_core.eval import FewShotResult, few_shot_accuracy
from ssl_core.eval.fewshot import few_shot_episodes


def naive_few_shot(train_emb, train_y, test_emb, test_y, n_way, k_shot, episodes, n_query, classifier, seed):
    """Sample by sample: the protocol in plain Python lists, one generator drawn in the documented order."""
    from sklearn.svm import LinearSVC

    g = torch.Generator().manual_seed(seed)
    classes = sorted(set(train_y.tolist()) | set(test_y.tolist()))
    accs = []
    for _ in range(episodes):
        drawn = [classes[i] for i in torch.randperm(len(classes), generator=g).tolist()[:n_way]]
        support, support_y, query, query_y = [], [], [], []
        for way, c in enumerate(drawn):
            members = [i for i, y in enumerate(train_y.tolist()) if y == c]
            support += [members[i] for i in torch.randperm(len(members), generator=g).tolist()[:k_shot]]
            support_y += [way] * k_shot
            members = [i for i, y in enumerate(test_y.tolist()) if y == c]
            query += [members[i] for i in torch.randperm(len(members), generator=g).tolist()[:n_query]]
            query_y += [way] * n_query
        if classifier == "svm":
            clf = LinearSVC(random_state=seed).fit(train_emb[support].double().numpy(), support_y)
            pred = clf.predict(test_emb[query].double().numpy()).tolist()
        else:
            unit = lambda v: v / math.sqrt(sum(float(a) ** 2 for a in v))  # noqa: E731
            means = []
            for way in range(n_way):
                rows = [unit(train_emb[i]) for i, y in zip(support, support_y, strict=True) if y == way]
                means.append(unit(sum(rows) / len(rows)))
            pred = [max(range(n_way), key=lambda w: float(unit(test_emb[q]) @ means[w])) for q in query]
        accs.append(sum(p == y for p, y in zip(pred, query_y, strict=True)) / len(query_y))
    return statistics.mean(accs), 1.96 * statistics.stdev(accs) / math.sqrt(episodes), accs


def _data(seed=0, classes=7, dim=6, spread=1.5):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g) * spread
    train_y = torch.arange(classes).repeat(25)[:160]
    test_y = torch.arange(classes).repeat(30)
    return (
        centres[train_y] + torch.randn(len(train_y), dim, generator=g),
        train_y,
        centres[test_y] + torch.randn(len(test_y), dim, generator=g),
        test_y,
    )


@pytest.mark.parametrize("classifier", ["prototype", "svm"])
@pytest.mark.parametrize("n_way,k_shot,n_query", [(5, 10, 20), (3, 1, 7), (7, 4, 30)])
def test_few_shot_matches_naive(classifier, n_way, k_shot, n_query):
    data = _data(seed=n_way)
    ours = few_shot_accuracy(*data, n_way, k_shot, 6, n_query=n_query, classifier=classifier, seed=3)
    mean, ci95, accs = naive_few_shot(*data, n_way, k_shot, 6, n_query, classifier, seed=3)
    assert isinstance(ours, FewShotResult)
    assert ours.accuracies == pytest.approx(accs, abs=1e-6)
    assert ours.mean == pytest.approx(mean) and ours.ci95 == pytest.approx(ci95)
    assert ours.std == pytest.approx(statistics.stdev(accs))


def test_episodes_follow_the_protocol():
    train_y, test_y = torch.arange(8).repeat(12), torch.arange(8).repeat(25)
    eps = list(few_shot_episodes(train_y, test_y, n_way=5, k_shot=10, episodes=50, n_query=20, seed=1))
    for ep in eps:
        assert len(set(ep.classes.tolist())) == 5
        assert torch.equal(train_y[ep.support], ep.classes[ep.support_y])  # support samples of the drawn class
        assert torch.equal(test_y[ep.query], ep.classes[ep.query_y])
        assert torch.bincount(ep.support_y).tolist() == [10] * 5 and torch.bincount(ep.query_y).tolist() == [20] * 5
        assert len(set(ep.support.tolist())) == 50 and len(set(ep.query.tolist())) == 100  # without replacement
    assert set(torch.cat([ep.classes for ep in eps]).tolist()) == set(range(8))
    again = list(few_shot_episodes(train_y, test_y, n_way=5, k_shot=10, episodes=50, n_query=20, seed=1))
    assert all(
        torch.equal(a.support, b.support) and torch.equal(a.query, b.query) for a, b in zip(eps, again, strict=True)
    )
    other = next(few_shot_episodes(train_y, test_y, n_way=5, k_shot=10, episodes=1, n_query=20, seed=2))
    assert not torch.equal(other.support, eps[0].support)


@pytest.mark.parametrize("classifier", ["prototype", "svm"])
def test_separated_classes_score_one_and_noise_scores_chance(classifier):
    train_emb, train_y, test_emb, test_y = _data(spread=20.0)
    r = few_shot_accuracy(train_emb, train_y, test_emb, test_y, 5, 5, 10, classifier=classifier)
    assert r.mean == 1.0 and r.ci95 == 0.0
    g = torch.Generator().manual_seed(0)
    noise = few_shot_accuracy(
        torch.randn(160, 6, generator=g),
        train_y,
        torch.randn(210, 6, generator=g),
        test_y,
        5,
        5,
        40,
        classifier=classifier,
    )
    assert abs(noise.mean - 0.2) < 3 * noise.ci95 + 0.02  # chance is 1 / n_way
    assert noise.ci95 == pytest.approx(1.96 * np.std(noise.accuracies, ddof=1) / math.sqrt(40))


def test_clear_errors():
    train_emb, train_y, test_emb, test_y = _data()
    with pytest.raises(ValueError, match="9-way episodes need 9 classes, but the labels hold 7; lower n_way"):
        few_shot_accuracy(train_emb, train_y, test_emb, test_y, n_way=9)
    short = "class 0 has 23 and 30, class 1 has 23 and 30, class 2 has 23 and 30, class 3 has 23 and 30, "
    with pytest.raises(
        ValueError, match="need 23 training and 20 test samples of every class, but class 6 has 22 and 30; lower k_shot"
    ):
        few_shot_accuracy(train_emb, train_y, test_emb, test_y, n_way=5, k_shot=23)
    with pytest.raises(ValueError, match=f"need 10 training and 31 test samples of every class, but {short}"):
        few_shot_accuracy(train_emb, train_y, test_emb, test_y, n_way=5, k_shot=10, n_query=31)
    with pytest.raises(ValueError, match="at least 2 episodes"):
        few_shot_accuracy(train_emb, train_y, test_emb, test_y, episodes=1)
    with pytest.raises(ValueError, match="classifier must be one of svm, prototype"):
        few_shot_accuracy(train_emb, train_y, test_emb, test_y, classifier="knn")

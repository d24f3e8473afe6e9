import numpy as np
import pytest
import torch

from ssl_core.data import LabeledSplit
from ssl_core.eval import knn_accuracy, knn_predict, linear_probe, stratified_subset


def naive_knn(train, train_y, test, k, t, num_classes):
    """Weighted kNN written sample by sample (DINO's eval_knn, without batching)."""
    preds = []
    for q in test:
        sims = [(float(q @ x / (q.norm() * x.norm())), int(y)) for x, y in zip(train, train_y, strict=True)]
        sims.sort(key=lambda s: -s[0])
        votes = [0.0] * num_classes
        for s, y in sims[:k]:
            votes[y] += np.exp(s / t)
        preds.append(int(np.argmax(votes)))
    return torch.tensor(preds)


@pytest.mark.parametrize("k,t", [(1, 0.07), (5, 0.5), (20, 0.07), (200, 1.0)])
def test_knn_matches_naive(k, t):
    g = torch.Generator().manual_seed(k)
    train, test = (
        torch.randn(97, 6, generator=g, dtype=torch.float64),
        torch.randn(31, 6, generator=g, dtype=torch.float64),
    )
    train_y = torch.randint(0, 4, (97,), generator=g)
    ours = knn_predict(train, train_y, test, k=k, temperature=t, num_classes=4, chunk_size=7)
    assert torch.equal(ours, naive_knn(train, train_y, test, min(k, 97), t, 4))


def test_knn_accuracy_on_separated_clusters():
    g = torch.Generator().manual_seed(0)
    centers = torch.eye(3) * 10
    y = torch.arange(3).repeat(40)
    x = centers[y] + torch.randn(120, 3, generator=g)
    assert knn_accuracy(x[:90], y[:90], x[90:], y[90:]) == 1.0
    noise = torch.randn(120, 3, generator=g)
    assert knn_accuracy(noise[:90], y[:90], noise[90:], y[90:]) < 0.7  # random features: near chance


def test_linear_probe_separable_and_random():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(4).repeat(100)
    w = torch.randn(4, 20, generator=g)
    x = w[y] * 3 + torch.randn(400, 20, generator=g)
    r = linear_probe(x[:300], y[:300], x[300:], y[300:])
    assert r.top1 > 0.95 and r.l2 in r.val_top1
    noise = torch.randn(400, 20, generator=g)
    assert linear_probe(noise[:300], y[:300], noise[300:], y[300:]).top1 < 0.45


def test_linear_probe_holds_out_one_of_a_two_sample_class(monkeypatch):
    """The held-out part is ssl_core.data.stratified_split's: a class of 2 samples gives one to validation."""
    import ssl_core.eval.linear as linear

    seen = []
    real_fit = linear._fit
    monkeypatch.setattr(linear, "_fit", lambda x, y, *a: seen.append(y.clone()) or real_fit(x, y, *a))
    g = torch.Generator().manual_seed(0)
    y = torch.tensor([0] * 20 + [1] * 2 + [2])
    linear_probe(torch.randn(23, 4, generator=g), y, torch.randn(5, 4, generator=g), torch.zeros(5), l2_grid=(0.1,))
    assert torch.bincount(seen[0], minlength=3).tolist() == [16, 1, 1]  # fitted without the held-out part
    assert len(seen[1]) == 23  # the refit uses all
    with pytest.raises(ValueError, match="every class has a single sample"):
        linear_probe(torch.randn(3, 4), torch.arange(3), torch.randn(3, 4), torch.arange(3))


def test_linear_probe_matches_scikit_learn():
    """Same objective as LogisticRegression(C=1/(l2*N)): the same predictions, up to optimiser tolerance."""
    from sklearn.linear_model import LogisticRegression

    from ssl_core.eval.linear import _fit

    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 3, (300,), generator=g)
    x = torch.randn(300, 8, generator=g) + torch.nn.functional.one_hot(y, 8).float() * 1.5
    l2 = 1e-2
    w = _fit(x, y, 3, l2, None, max_iter=500)
    sk = LogisticRegression(C=1 / (l2 * len(x)), max_iter=5000, tol=1e-10).fit(x.numpy(), y.numpy())
    ours = (x @ w[:-1] + w[-1]).softmax(1)
    theirs = torch.from_numpy(sk.predict_proba(x.numpy())).float()
    torch.testing.assert_close(ours, theirs, atol=2e-3, rtol=0)


def test_stratified_subset_keeps_class_shares():
    y = torch.tensor([0] * 600 + [1] * 300 + [2] * 100)
    sub = stratified_subset(LabeledSplit(list(range(1000)), y), 100, seed=0)
    assert len(sub.labels) == 100
    assert torch.bincount(sub.labels).tolist() == [60, 30, 10]
    assert all(y[sub.inputs[i]] == sub.labels[i] for i in range(100))
    assert stratified_subset(LabeledSplit(list(range(1000)), y), None).labels is y
    assert stratified_subset(LabeledSplit(list(range(1000)), y, ("a", "b", "c")), 100).class_names == ("a", "b", "c")

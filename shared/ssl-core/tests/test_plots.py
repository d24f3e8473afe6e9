"""The per-run embeddings picture: t-SNE keeps classes apart, and the PNG is written."""

import pytest
import torch

from ssl_core.data import LabeledSplit
from ssl_core.eval.knn import knn_accuracy
from ssl_core.eval.plots import plot_test_embeddings, tsne_2d


def _clusters(n_per_class=40, classes=4, dim=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g) * 4
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    return centres[labels] + torch.randn(len(labels), dim, generator=g), labels


def test_tsne_keeps_separated_classes_apart():
    x, y = _clusters()
    pts = tsne_2d(x, seed=0, max_iter=250)
    assert pts.shape == (160, 2)
    pts = torch.from_numpy(pts)
    # neighbours in the 2-D map still share their class (a random map would score about 25%)
    assert knn_accuracy(pts, y, pts, y, k=5) > 0.95
    assert (tsne_2d(x, seed=0, max_iter=250) == pts.numpy()).all()  # seeded
    with pytest.raises(ValueError, match="at least 3"):
        tsne_2d(x[:2])


def test_plot_test_embeddings_writes_a_png_of_a_stratified_subset(tmp_path):
    x, y = _clusters(n_per_class=30, classes=3)
    seen = []

    def embed(batch):
        seen.append(len(batch))
        return batch * 2

    out = plot_test_embeddings(embed, LabeledSplit(list(x), y), tmp_path / "plots" / "embeddings.png", size=45)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sum(seen) == 45  # only the subset is embedded
    assert [p.name for p in (tmp_path / "plots").iterdir()] == ["embeddings.png"]  # no temporary left behind


def test_the_legend_names_the_classes_of_the_split(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    legends = []
    save = Figure.savefig

    def record(fig, *args, **kwargs):
        legends.append([t.get_text() for t in fig.axes[0].get_legend().get_texts()])
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    x, y = _clusters(n_per_class=20, classes=3)
    names = ("cat", "dog", "bird")
    plot_test_embeddings(lambda b: b, LabeledSplit(list(x), y, names), tmp_path / "named.png", size=30)
    plot_test_embeddings(lambda b: b, LabeledSplit(list(x), y), tmp_path / "indexed.png", size=30)
    assert legends == [["cat", "dog", "bird"], ["0", "1", "2"]]
    with pytest.raises(ValueError, match="only 2 class names"):
        LabeledSplit(list(x), y, ("cat", "dog"))


def test_tsne_of_a_collapsed_representation_is_one_point():
    # scikit-learn's Barnes-Hut t-SNE crashed the process (segmentation fault) on identical rows
    pts = tsne_2d(torch.ones(10, 4), seed=0, max_iter=250)
    assert pts.shape == (10, 2) and (pts == 0).all()

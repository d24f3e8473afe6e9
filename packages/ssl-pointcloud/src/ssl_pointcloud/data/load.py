"""``load_data``: the point clouds a run pretrains and probes on, the baseline rows and the extra probe columns.

Rows and columns of the probe table:

- ``raw_input`` is the D2 shape distribution (:func:`~ssl_pointcloud.descriptors.d2_histogram`), not the
  flattened coordinates (an unordered set of points flattened means nothing to a kNN);
- ``fpfh``: FPFH features mean- and max-pooled (:func:`~ssl_pointcloud.descriptors.fpfh_pooled`, remembered per
  cloud by :class:`~ssl_pointcloud.descriptors.PerCloudCache`: the extra columns embed the clouds again);
- the ``svm`` column: a linear SVM (scikit-learn's ``LinearSVC``, primal solver) on standardised embeddings with
  a fixed ``C = SVM_C`` (Point-MAE's linear-SVM evaluation; CrossPoint and Point-BERT fix ``C`` too). A fixed
  ``C``, no held-out search: one fit of a 768-d embedding takes ~1-4 s on 2 busy cores, and on the default
  data ``C = 0.01`` scored within 2 points of the best of {0.01, 0.1, 1} on D2 and on random 768-d features;
- the ``fewshot`` column: mean accuracy of 5-way 10-shot episodes with a linear SVM
  (:func:`ssl_core.eval.few_shot_accuracy`, Point-BERT / Point-MAE's protocol on frozen embeddings).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from ssl_core.data import DataBundle, LabeledSplit
from ssl_core.errors import DataError
from ssl_core.eval.embed import embed_inputs
from ssl_pointcloud.data.config import PointDataConfig, cache_root
from ssl_pointcloud.data.folder import load_cgal, load_folder
from ssl_pointcloud.data.shapes import load_shapes
from ssl_pointcloud.descriptors import PerCloudCache, d2_histogram, fpfh_pooled
from ssl_pointcloud.info import PointInfo

SVM_C = 0.01
FEWSHOT = {"n_way": 5, "k_shot": 10, "n_query": 20}
EMBED_BATCH = 64  # clouds per forward pass of the extra columns
CHECK = 8  # clouds embedded again to tell whether a row's cached embeddings are still those of its network


def svm_accuracy(
    train: torch.Tensor,
    train_y: torch.Tensor,
    test: torch.Tensor,
    test_y: torch.Tensor,
    c: float = SVM_C,
    seed: int = 0,
) -> float:
    """Test accuracy of a linear SVM (``LinearSVC(C=c)``, primal, squared hinge, one-vs-rest) fitted on embeddings
    standardised with the training statistics.

    Shapes:
        - train: ``(N, D)``, train_y: ``(N,)``, test: ``(M, D)``, test_y: ``(M,)``
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    mean, std = train.double().mean(0), train.double().std(0).clamp_min(1e-8)
    x, xt = ((train.double() - mean) / std).numpy(), ((test.double() - mean) / std).numpy()
    y, yt = train_y.numpy(), test_y.numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return float(LinearSVC(C=c, dual=False, random_state=seed).fit(x, y).score(xt, yt))


class PointProbes:
    """The ``svm`` and ``fewshot`` columns (see the module docstring) of every row, computed on the whole probe
    splits; each row's embeddings are computed once for both columns.

    Args:
        probe_train, probe_test: the labelled splits.
        fewshot_episodes: episodes of the few-shot column (0: no such column).
        seed: seeds the SVM's held-out part and the episodes.
    """

    def __init__(self, probe_train: LabeledSplit, probe_test: LabeledSplit, fewshot_episodes: int = 10, seed: int = 0):
        self.train, self.test, self.episodes, self.seed = probe_train, probe_test, fewshot_episodes, seed
        self._last: tuple[str, torch.Tensor, tuple[torch.Tensor, torch.Tensor]] | None = None

    def embeddings(self, row: str, embed: Callable, device) -> tuple[torch.Tensor, torch.Tensor]:
        """The row's ``(train, test)`` embeddings: those of the previous call when it was for the same row and
        ``embed`` still gives the same embeddings of the first ``CHECK`` training clouds (so a network trained
        since, under the same row name, is embedded again), else computed."""
        check = embed_inputs(embed, self.train.inputs[:CHECK], EMBED_BATCH, device)
        last = self._last
        if last is None or last[0] != row or last[1].shape != check.shape or not torch.allclose(last[1], check):
            both = tuple(embed_inputs(embed, split.inputs, EMBED_BATCH, device) for split in (self.train, self.test))
            self._last = last = (row, check, both)
        return last[2]

    def svm(self, row: str, embed: Callable, device, backbone) -> float | None:
        """The ``svm`` column: :func:`svm_accuracy` of the row's embeddings."""
        e_train, e_test = self.embeddings(row, embed, device)
        return svm_accuracy(e_train, self.train.labels, e_test, self.test.labels, seed=self.seed)

    def fewshot(self, row: str, embed: Callable, device, backbone) -> float | None:
        """The ``fewshot`` column: 5-way 10-shot (20 queries) SVM episodes; ``None`` when the splits have fewer
        than 5 classes with 10 training and 20 test clouds each."""
        from sklearn.exceptions import ConvergenceWarning

        from ssl_core.eval import few_shot_accuracy

        ytr, yte = self.train.labels, self.test.labels
        ok = [c for c in ytr.unique().tolist() if (ytr == c).sum() >= 10 and (yte == c).sum() >= 20]
        if len(ok) < FEWSHOT["n_way"]:
            return None
        e_train, e_test = self.embeddings(row, embed, device)
        mtr, mte = torch.isin(ytr, torch.tensor(ok)), torch.isin(yte, torch.tensor(ok))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            result = few_shot_accuracy(
                e_train[mtr],
                ytr[mtr],
                e_test[mte],
                yte[mte],
                episodes=self.episodes,
                classifier="svm",
                seed=self.seed,
                **FEWSHOT,
            )
        return result.mean


def _bundle(cfg: PointDataConfig, train, description: str, splits) -> DataBundle:
    probe_train, probe_test = splits if splits else (None, None)
    extra = {}
    if splits:
        probes = PointProbes(probe_train, probe_test, cfg.fewshot_episodes, cfg.seed)
        if cfg.svm:
            extra["svm"] = probes.svm
        if cfg.fewshot_episodes:
            extra["fewshot"] = probes.fewshot
    return DataBundle(
        train=train,
        info=PointInfo(cfg.num_points),
        description=description,
        probe_train=probe_train,
        probe_test=probe_test,
        raw_features=d2_histogram,
        extra_baselines={"fpfh": PerCloudCache(fpfh_pooled)},
        extra_probes=extra,
    )


def _shape_splits(cfg: PointDataConfig, cache: Path) -> tuple[LabeledSplit, LabeledSplit]:
    out = []
    for split, n in ((1, cfg.probe_train_per_class), (2, cfg.probe_test_per_class)):
        points, labels, names = load_shapes(n, 3 * cfg.seed + split, cfg.num_points, cfg.partial, cache, cfg.rotation)
        out.append(LabeledSplit(torch.from_numpy(points), torch.from_numpy(labels), names))
    return out[0], out[1]


def load_data(cfg: PointDataConfig) -> DataBundle:
    """Load the point clouds ``cfg`` names (see :class:`PointDataConfig`).

    Generated shapes (``path=None``): pretraining on ``12 * pretrain_per_class`` unlabelled clouds, probes
    fitted on ``12 * probe_train_per_class`` and scored on ``12 * probe_test_per_class`` labelled clouds, the
    three sets drawn from different seeds. ``"cgal"``: pretraining on the CGAL demo meshes, the same probes. A
    folder: probes on its class folders (ModelNet40's train / test, or a stratified split), pretraining on every
    cloud except the probe-test ones (and on every cloud of an unlabelled folder, which has no probes).

    The bundle's ``train`` is a ``(M, num_points, 3)`` float32 tensor (one cloud per row); its ``raw_input``
    baseline is the D2 shape distribution, ``fpfh`` the pooled FPFH features; the extra columns ``svm`` and
    ``fewshot`` are those of :class:`PointProbes`.
    """
    if cfg.path == "scenes":
        from ssl_pointcloud.scenes import load_scene_data

        return load_scene_data(cfg)
    cache = cache_root(cfg.cache_dir)
    if cfg.path is None or cfg.path == "cgal":
        splits = _shape_splits(cfg, cache)
        n_tr, n_te = len(splits[0].labels), len(splits[1].labels)
        view = ("partial views" if cfg.partial else "whole surfaces") + (
            ", upright" if cfg.rotation == "z" else ", rotated over SO(3)"
        )
        probes = f"probes: 12 shapes, {n_tr:,} / {n_te:,} clouds"
        if cfg.path == "cgal":
            train = load_cgal(cfg.num_points, cfg.sampling, cfg.seed, cache, views=cfg.cgal_views)
            desc = f"CGAL demo meshes: pretraining on {len(train):,} clouds of {cfg.num_points} points; {probes}"
            return _bundle(cfg, train, desc + " (generated shapes)", splits)
        points, _, _ = load_shapes(
            cfg.pretrain_per_class, 3 * cfg.seed, cfg.num_points, cfg.partial, cache, cfg.rotation
        )
        desc = f"generated shapes ({view}): pretraining on {len(points):,} clouds of {cfg.num_points} points; {probes}"
        return _bundle(cfg, torch.from_numpy(points), desc, splits)
    root = Path(cfg.path).expanduser()
    folder = load_folder(root, cfg.num_points, cfg.sampling, cfg.seed, cache)
    desc = f"{root}: {len(folder.points):,} clouds of {cfg.num_points} points"
    split = folder.probe_split(cfg.test_fraction, cfg.seed)
    if split is None:
        return _bundle(cfg, folder.points, desc + ", no labels (probes skipped)", None)
    tr, te = split
    if len(tr) == 0 or len(te) == 0:
        raise DataError(f"{root}: the probe split has {len(tr)} training and {len(te)} test clouds; both need some")
    keep = torch.ones(len(folder.points), dtype=torch.bool)
    keep[te] = False
    splits = (
        LabeledSplit(folder.points[tr], folder.labels[tr], folder.classes),
        LabeledSplit(folder.points[te], folder.labels[te], folder.classes),
    )
    desc += f", {len(folder.classes)} classes (probes: {len(tr):,} / {len(te):,} clouds)"
    return _bundle(cfg, folder.points[keep], desc, splits)

"""Weisfeiler-Lehman subtree kernel SVM (Shervashidze et al., 2011) on MUTAG / Cuneiform, with grakel.

The classical baseline of the graph-level table in ``packages/ssl-graph/README.md``: grakel's
``WeisfeilerLehman(n_iter, base_graph_kernel=VertexHistogram, normalize=True)`` kernel, an ``SVC`` on the
precomputed kernel, ``C`` chosen by an inner 5-fold search, scored by the same 10 stratified folds as the
``cv_top1`` column of ``metrics.json`` (seed 0). Node labels are the one-hot (0/1) columns of the node
features, as in the TU files; continuous attributes (Cuneiform's) are not used by the kernel.

Usage::

    uv run python packages/ssl-graph/benchmarks/wl_kernel.py --data mutag cuneiform
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from grakel import Graph
from grakel.kernels import VertexHistogram, WeisfeilerLehman
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.svm import SVC

from ssl_graph.data import GraphDataConfig, load_data


def to_grakel(graphs) -> list[Graph]:
    """PyG graphs as grakel graphs, labelled by their one-hot feature columns."""
    x_all = torch.cat([g.x for g in graphs])
    onehot = [j for j in range(x_all.shape[1]) if set(x_all[:, j].unique().tolist()) <= {0.0, 1.0}]
    out = []
    for g in graphs:
        labels = {i: "".join(str(int(v)) for v in g.x[i, onehot].tolist()) for i in range(g.num_nodes)}
        edges = {(int(u), int(v)) for u, v in g.edge_index.t().tolist()}
        for i in range(g.num_nodes):  # grakel needs every node to appear; an isolated node gets a self-pair
            if not any(i in e for e in edges):
                edges.add((i, i))
        out.append(Graph(edges, node_labels=labels))
    return out


def wl_cross_val(name: str, n_iter: int = 5, folds: int = 10, seed: int = 0) -> tuple[float, float, float]:
    """Mean and standard deviation of the 10-fold accuracy of a WL-kernel SVM, and the seconds it took."""
    t0 = time.perf_counter()
    bundle = load_data(GraphDataConfig(name=name))
    graphs = list(bundle.probe_train.inputs) + list(bundle.probe_test.inputs)
    y = torch.cat([bundle.probe_train.labels, bundle.probe_test.labels]).numpy()
    kernel = WeisfeilerLehman(n_iter=n_iter, base_graph_kernel=VertexHistogram, normalize=True)
    k = kernel.fit_transform(to_grakel(graphs))
    accs = []
    k_folds = min(folds, int(np.bincount(y).min()))
    for tr, te in StratifiedKFold(k_folds, shuffle=True, random_state=seed).split(k, y):
        inner = min(5, int(np.bincount(y[tr]).min()))
        search = GridSearchCV(SVC(kernel="precomputed"), {"C": [1e-3, 1e-2, 1e-1, 1, 10, 100]}, cv=inner)
        search.fit(k[np.ix_(tr, tr)], y[tr])
        accs.append(float((search.predict(k[np.ix_(te, tr)]) == y[te]).mean()))
    return float(np.mean(accs)), float(np.std(accs)), time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["mutag", "cuneiform"])
    parser.add_argument("--iterations", type=int, default=5)
    args = parser.parse_args()
    for name in args.data:
        mean, std, secs = wl_cross_val(name, args.iterations)
        print(f"{name}: WL kernel (h={args.iterations}) SVM 10-fold {100 * mean:.2f} ± {100 * std:.2f}% ({secs:.1f} s)")


if __name__ == "__main__":
    main()

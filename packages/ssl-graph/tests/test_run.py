"""`selfsup pretrain graph/<method>` end to end (in process): training, cross-validated probes, eval, export."""

import json

import pytest

import ssl_core
from ssl_core.run import evaluate, pretrain
from ssl_core.testing.export_checks import assert_export_matches_run

pytestmark = pytest.mark.slow

FAST = ["train.progress=false", "train.max_minutes=null", "probe.cv_folds=3"]


def run_and_export(tmp_path, key, *overrides, steps=3):
    run = pretrain(key, out=tmp_path / "run", max_steps=steps, overrides=[*FAST, *overrides])
    metrics = json.loads((run / "metrics.json").read_text())
    assert list(metrics) == ["pretrained", "random_init", "raw_input"]
    for row in metrics.values():
        assert {"knn_top1", "linear_top1", "cv_top1", "cv_std"} <= set(row)
        assert all(0 <= row[k] <= 1 for k in ("knn_top1", "linear_top1", "cv_top1"))
    out = ssl_core.export_backbone(run, tmp_path / "export")
    assert_export_matches_run(run, out, n=4)
    return run, metrics


def test_graphcl_on_mutag(tmp_path):
    run, metrics = run_and_export(tmp_path, "graph/graphcl", f"data.cache_dir={tmp_path / 'cache'}")
    assert evaluate(run) == metrics  # the same checkpoint gives the same probes
    cfg = json.loads((tmp_path / "export" / "config.json").read_text())
    assert cfg["name"] == "gnn" and cfg["input"]["num_features"] == 7


def test_dgi_on_karate_is_node_level(tmp_path):
    _, metrics = run_and_export(
        tmp_path,
        "graph/dgi",
        "data.name=karate",
        "train.batch_size=16",
        f"data.cache_dir={tmp_path / 'cache'}",
        "probe.k=3",
        steps=2,
    )
    assert metrics["raw_input"]["knn_top1"] >= 0


def test_graphgpt_exports_its_vocabulary(tmp_path):
    run_and_export(
        tmp_path,
        "graph/graphgpt",
        f"data.cache_dir={tmp_path / 'cache'}",
        "method.model.dim=16",
        "method.model.depth=1",
    )
    cfg = json.loads((tmp_path / "export" / "config.json").read_text())
    assert cfg["name"] == "graph_transformer" and "n0" in cfg["config"]["vocab"]


def test_seenet_on_a_user_csv_exports_seconv(tmp_path):
    from ssl_graph.data import urban_mobility

    graph, function = urban_mobility(num_locations=120)
    rows = [f"{u},{v},{t}" for (u, v), t in zip(graph.edge_index.t().tolist(), graph.edge_slot.tolist(), strict=True)]
    (tmp_path / "city.csv").write_text("\n".join(["src,dst,slot", *rows]))
    (tmp_path / "city.labels").write_text("".join(f"{i} {int(c)}\n" for i, c in enumerate(function)))
    _, metrics = run_and_export(
        tmp_path,
        "graph/seenet",
        f"data.path={tmp_path / 'city.csv'}",
        "train.batch_size=16",
        "method.encoder.hidden_dim=8",
        steps=2,
    )
    cfg = json.loads((tmp_path / "export" / "config.json").read_text())
    assert cfg["name"] == "seconv" and cfg["config"]["num_slots"] == 4 and cfg["embed_dim"] == 32
    assert metrics["raw_input"]["knn_top1"] >= 0  # no node features in a CSV: one-hot degrees

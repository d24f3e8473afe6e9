"""One atomic write for every file the core writes: a failure mid-write leaves the old file and no temporary."""

import json
import os

import pytest

from ssl_core.io import atomic_write, temporary_name


def test_writes_and_replaces_a_file(tmp_path):
    path = tmp_path / "metrics.json"
    for value in (1, 2):
        with atomic_write(path) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".tmp-") and tmp.suffix == ".json"
            assert not path.exists() or json.loads(path.read_text()) == value - 1  # untouched until the end
            tmp.write_text(json.dumps(value))
        assert json.loads(path.read_text()) == value
    assert os.listdir(tmp_path) == ["metrics.json"]


@pytest.mark.parametrize("fsync", [True, False])
def test_failure_mid_write_keeps_the_old_file_and_removes_the_temporary(tmp_path, fsync):
    path = tmp_path / "config.yaml"
    path.write_text("old: 1\n")
    with pytest.raises(RuntimeError, match="disk full"), atomic_write(path, fsync=fsync) as tmp:
        with open(tmp, "w") as f:
            f.write("new: ")  # half written
        raise RuntimeError("disk full")
    assert path.read_text() == "old: 1\n"
    assert os.listdir(tmp_path) == ["config.yaml"]


def test_a_folder_appears_whole_or_not_at_all(tmp_path):
    final = tmp_path / "step_00000003"
    with pytest.raises(KeyboardInterrupt), atomic_write(final) as tmp:
        tmp.mkdir()
        (tmp / "model.safetensors").write_bytes(b"\0" * 10)
        raise KeyboardInterrupt  # Ctrl-C while saving
    assert os.listdir(tmp_path) == []
    with atomic_write(final) as tmp:
        tmp.mkdir()
        (tmp / "trainer.json").write_text("{}")
    assert os.listdir(final) == ["trainer.json"]
    assert os.listdir(tmp_path) == ["step_00000003"]


def test_a_stale_temporary_of_the_same_process_id_is_replaced(tmp_path):
    path = tmp_path / "summary.json"
    temporary_name(path).write_text("garbage of a killed process")
    with atomic_write(path) as tmp:
        with open(tmp, "a") as f:  # appending must start from an empty file
            f.write("{}")
    assert path.read_text() == "{}" and os.listdir(tmp_path) == ["summary.json"]


def test_every_writer_of_the_core_uses_it(tmp_path, monkeypatch):
    """The run, config, export, checkpoint and plot writers leave the old file when the write fails."""
    import torch
    from omegaconf import OmegaConf
    from torch import nn

    from ssl_core import config, run
    from ssl_core.eval.plots import plot_embedding_map
    from ssl_core.train import checkpoint

    def broken_replace(src, dst):
        raise OSError("no space left on device")

    monkeypatch.setattr("ssl_core.io.os.replace", broken_replace)
    (tmp_path / "metrics.json").write_text("old")
    (tmp_path / "config.yaml").write_text("old")
    (tmp_path / "embeddings.png").write_text("old")
    with pytest.raises(OSError, match="no space"):
        run._write_json(tmp_path / "metrics.json", {"a": 1})
    with pytest.raises(OSError, match="no space"):
        config.save_config(OmegaConf.create({"recipe": "x"}), tmp_path)
    with pytest.raises(OSError, match="no space"):
        plot_embedding_map(torch.zeros(3, 2).numpy(), [0, 1, 2], tmp_path / "embeddings.png")
    with pytest.raises(OSError, match="no space"):
        checkpoint.save_checkpoint(tmp_path / "checkpoints", 1, nn.Linear(2, 2), {}, {})
    for name in ("metrics.json", "config.yaml", "embeddings.png"):
        assert (tmp_path / name).read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["checkpoints", "config.yaml", "embeddings.png", "metrics.json"]
    assert os.listdir(tmp_path / "checkpoints") == []


def test_a_failed_export_keeps_the_previous_export(toy_run, tmp_path, monkeypatch):
    import ssl_core.export
    from ssl_core import export_backbone, load_backbone
    from ssl_core.train import list_checkpoints

    out = export_backbone(toy_run, tmp_path / "export")  # the latest checkpoint, step 3
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_save = ssl_core.export.save_model

    def save_then_fail(model, path):  # the weights of step 2 are written, then the disk fills up
        real_save(model, path)
        raise OSError("no space left on device")

    monkeypatch.setattr(ssl_core.export, "save_model", save_then_fail)
    with pytest.raises(OSError, match="no space"):
        export_backbone(toy_run, out, checkpoint=list_checkpoints(toy_run / "checkpoints")[0])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # old files, no temporary
    assert json.loads((out / "config.json").read_text())["source"]["step"] == 3
    load_backbone(out)

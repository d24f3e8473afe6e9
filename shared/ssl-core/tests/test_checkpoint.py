import json
import re
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from ssl_core.errors import CheckpointError
from ssl_core.train.checkpoint import (
    check_checkpoint,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_weights,
    optimizer_state_from_flat,
    optimizer_state_to_flat,
    save_checkpoint,
)
from ssl_core.train.optim import LARS


def test_save_load_roundtrip_and_pruning(tmp_path):
    model = nn.Linear(3, 2)
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, model, {"epoch": 0}, {"x": torch.arange(step)}, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000002", "step_00000003"]
    ck = load_checkpoint(latest_checkpoint(tmp_path))
    assert ck.step == 3 and torch.equal(ck.tensors["x"], torch.arange(3))
    other = nn.Linear(3, 2)
    load_weights(other, ck.path)
    assert torch.equal(other.weight, model.weight)


def test_temporary_folders_are_not_checkpoints(tmp_path):
    save_checkpoint(tmp_path, 5, nn.Linear(2, 2), {}, {})
    (tmp_path / ".tmp-step_00000009-123").mkdir()
    assert latest_checkpoint(tmp_path).name == "step_00000005"
    save_checkpoint(tmp_path, 6, nn.Linear(2, 2), {}, {})  # the next save sweeps stale temporaries away
    assert not list(tmp_path.glob(".tmp-*"))


def _train_steps(opt, params, n=3):
    for _ in range(n):
        for p in params:
            p.grad = torch.randn_like(p)
        opt.step()


def test_optimizer_state_roundtrip_adamw_and_lars():
    for make in (lambda ps: torch.optim.AdamW(ps, lr=0.1), lambda ps: LARS(ps, lr=0.1)):
        torch.manual_seed(0)
        a = nn.Linear(4, 3)
        opt = make(a.parameters())
        _train_steps(opt, list(a.parameters()))
        tensors, meta = optimizer_state_to_flat(opt.state_dict())
        meta = json.loads(json.dumps(meta))  # it must survive JSON
        tensors = {k: v.clone() for k, v in tensors.items()}  # as read back from disk: no shared storage
        b = nn.Linear(4, 3)
        b.load_state_dict(a.state_dict())
        opt_b = make(b.parameters())
        opt_b.load_state_dict(optimizer_state_from_flat(tensors, meta))
        torch.manual_seed(1)
        _train_steps(opt, list(a.parameters()))
        torch.manual_seed(1)
        _train_steps(opt_b, list(b.parameters()))
        torch.testing.assert_close(a.weight, b.weight, rtol=0, atol=0)


def test_killed_while_saving_leaves_last_good_checkpoint(tmp_path):
    """A process dies half-way through writing its second checkpoint; the first stays the latest and loads."""
    script = textwrap.dedent(f"""
        import os, torch, safetensors.torch as st
        from torch import nn
        from ssl_core.train import checkpoint as ck
        model = nn.Linear(4, 4)
        ck.save_checkpoint({str(tmp_path)!r}, 1, model, {{"epoch": 0}}, {{"t": torch.ones(2)}})
        real = st.save_file
        def dying_save_file(tensors, path, *a, **k):
            real(tensors, path, *a, **k)
            with open(path, "r+b") as f:
                f.truncate(10)  # half-written file
            os._exit(9)  # killed before the folder is renamed into place
        ck.save_file = dying_save_file
        with torch.no_grad():
            model.weight.add_(1.0)
        ck.save_checkpoint({str(tmp_path)!r}, 2, model, {{"epoch": 0}}, {{"t": torch.ones(2)}})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    assert list(tmp_path.glob(".tmp-step_00000002-*")), "the interrupted write should have left its temporary folder"
    latest = latest_checkpoint(tmp_path)
    assert latest.name == "step_00000001"
    model = nn.Linear(4, 4)
    load_weights(model, latest)
    assert load_checkpoint(latest).step == 1


def _truncate(file, keep=0.5):
    size = file.stat().st_size
    with open(file, "r+b") as f:
        f.truncate(int(size * keep))


def test_check_checkpoint_names_the_damage_and_the_previous_intact_checkpoint(tmp_path):
    model = nn.Linear(4, 4)
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, model, {"epoch": 0}, {"t": torch.ones(3)}, keep=3)
    first, second, third = list_checkpoints(tmp_path)
    assert check_checkpoint(third) == third
    _truncate(third / "model.safetensors")
    with pytest.raises(CheckpointError) as e:
        check_checkpoint(third, fix="use {previous}")
    msg = str(e.value)
    assert msg.startswith(f"checkpoint {third} is damaged: model.safetensors is truncated (")
    assert msg.endswith(f"; the previous checkpoint {second} is intact: use {second}")
    (second / "trainer.json").write_text('{"step": 2')  # cut short
    with pytest.raises(CheckpointError, match=f"trainer.json is not valid JSON .*previous checkpoint {first} is"):
        check_checkpoint(second)
    with pytest.raises(CheckpointError, match=f"previous checkpoint {first} is intact$"):  # skips the damaged one
        check_checkpoint(third)
    (first / "trainer.safetensors").unlink()
    with pytest.raises(CheckpointError, match="trainer.safetensors is missing; the run has no earlier checkpoint$"):
        check_checkpoint(first, fix="never said without a previous checkpoint")
    with pytest.raises(CheckpointError, match="the run has no earlier intact checkpoint$"):
        check_checkpoint(third)
    check_checkpoint(third, files=("trainer.json",))  # only the files asked for
    with pytest.raises(CheckpointError, match="^checkpoint .*step_00000009 not found$"):
        load_weights(model, tmp_path / "step_00000009")


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda b: b[:5], "less than a safetensors header"),
        (lambda b: b[:20], "but its header alone needs"),
        (lambda b: b[:-1], r"is truncated \(\d+ of \d+ bytes\)"),
        (lambda b: b + b"\0" * 7, "has 7 bytes beyond the tensors"),
        (lambda b: b[:8] + b"{not json" + b[17:], "unreadable header"),
        (lambda b: b"\0" * len(b), "unreadable header"),  # zeroed out: an empty header
        (lambda b: b.replace(b'"F32"', b'"F99"'), "invalid header"),  # an unknown dtype
    ],
)
def test_every_kind_of_damaged_safetensors_file_is_caught_before_loading(tmp_path, damage, reason):
    save_checkpoint(tmp_path, 1, nn.Linear(4, 4), {}, {})
    file = latest_checkpoint(tmp_path) / "model.safetensors"
    file.write_bytes(damage(file.read_bytes()))
    with pytest.raises(CheckpointError, match=f"is damaged: model.safetensors .*{reason}"):
        load_weights(nn.Linear(4, 4), file.parent)


def test_loaders_refuse_damaged_checkpoints(tmp_path):
    model = nn.Linear(4, 4)
    for step in (1, 2):
        save_checkpoint(tmp_path, step, model, {"epoch": 0}, {"t": torch.ones(3)})
    first, second = list_checkpoints(tmp_path)
    _truncate(second / "trainer.safetensors", 0.9)
    with pytest.raises(CheckpointError, match=f"checkpoint {second} is damaged: trainer.safetensors is truncated"):
        load_checkpoint(second)
    _truncate(second / "model.safetensors", 0.9)
    for path in (second, second / "model.safetensors"):  # a folder or the file itself
        with pytest.raises(CheckpointError, match=f"previous checkpoint {first} is intact: load {first}$"):
            load_weights(nn.Linear(4, 4), path, fix="load {previous}")
    with pytest.raises(CheckpointError, match="do not fit the model"):  # intact, but another model's
        load_weights(nn.Linear(4, 5), first)


def test_every_entry_point_names_a_damaged_checkpoint_and_the_previous_one(toy_run, tmp_path):
    """eval, export, --resume and load_backbone on a run whose latest model.safetensors was cut short."""
    from ssl_core import export_backbone, load_backbone
    from ssl_core.errors import ConfigError
    from ssl_core.run import evaluate, pretrain

    ckpts = toy_run / "checkpoints"
    previous, latest = list_checkpoints(ckpts)
    _truncate(latest / "model.safetensors")
    damaged = rf"checkpoint {latest} is damaged: model.safetensors is truncated \([^)]*\)"
    intact = f"; the previous checkpoint {previous} is intact: "

    with pytest.raises(CheckpointError) as e:
        evaluate(toy_run)
    assert re.fullmatch(
        damaged + re.escape(f"{intact}evaluate it with `selfsup eval {toy_run} --checkpoint {previous}`"), str(e.value)
    )
    with pytest.raises(ConfigError, match="no labels"):  # the previous one passes the check (toy data has no labels)
        evaluate(toy_run, previous)

    out = tmp_path / "export"
    with pytest.raises(CheckpointError) as e:
        export_backbone(toy_run, out)
    assert re.fullmatch(
        damaged + re.escape(f"{intact}export it with `selfsup export {toy_run} {out} --checkpoint {previous}`"),
        str(e.value),
    )
    assert not out.exists()

    with pytest.raises(CheckpointError) as e:
        pretrain("toy/tiny", out=toy_run, resume=True)
    fix = f"move {latest.name} out of {ckpts} and resume again to continue from {previous}"
    assert re.fullmatch(damaged + re.escape(intact + fix), str(e.value))
    from ssl_core.distributed import DistInfo
    from ssl_core.testing import ToyMethod, toy_dataset
    from ssl_core.train import TrainConfig, Trainer

    trainer = Trainer(ToyMethod(), toy_dataset(), TrainConfig(batch_size=16, progress=False), toy_run, DistInfo())
    with pytest.raises(CheckpointError) as e:  # the library path to resuming says the same
        trainer.fit(resume=True)
    assert re.fullmatch(damaged + re.escape(intact + fix), str(e.value))
    shutil.move(latest, tmp_path / "set-aside")  # doing what the message says
    pretrain("toy/tiny", out=toy_run, resume=True)
    assert latest_checkpoint(ckpts).name == latest.name

    export_backbone(toy_run, out)
    load_backbone(out)
    _truncate(out / "backbone.safetensors")
    with pytest.raises(CheckpointError) as e:
        load_backbone(out)
    assert re.fullmatch(
        rf"export {out} is damaged: backbone.safetensors is truncated \(.*\); "
        + re.escape(f"export it again with `selfsup export {toy_run} {out}`"),
        str(e.value),
    )
    (out / "config.json").write_text('{"format": "selfsup-backbone", "modal')
    with pytest.raises(CheckpointError, match=f"export {out} is damaged: config.json is not valid JSON"):
        load_backbone(out)
    (toy_run / "backbone.json").write_text("")
    with pytest.raises(CheckpointError, match=f"run folder {toy_run} is damaged: backbone.json is not valid JSON"):
        export_backbone(toy_run, out)

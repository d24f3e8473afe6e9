import json
import subprocess
import sys
import textwrap

import torch
from torch import nn

from ssl_core.train.checkpoint import (
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

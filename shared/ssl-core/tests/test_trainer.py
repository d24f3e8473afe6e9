import csv
import itertools
import os
import signal

import pytest
import torch

from ssl_core.distributed import DistInfo
from ssl_core.errors import DataError
from ssl_core.testing import ToyConfig, ToyMethod, toy_dataset
from ssl_core.train import TrainConfig, Trainer, TrainingError, list_checkpoints, seed_everything

CPU = DistInfo()


def cfg(**kw) -> TrainConfig:
    base = dict(epochs=3, batch_size=16, lr=0.05, warmup_epochs=0.5, seed=0, progress=False, device="cpu")
    return TrainConfig(**{**base, **kw})


def fit(tmp_path, method, config, data=None, resume=False):
    return Trainer(method, toy_dataset(64) if data is None else data, config, tmp_path, CPU).fit(resume=resume)


def read_log(run_dir):
    with open(run_dir / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


class InterruptedToy(ToyMethod):
    """Sends itself SIGINT after a given step, as a user pressing Ctrl-C would."""

    stop_after = 5

    def after_optimizer_step(self, step, values):
        super().after_optimizer_step(step, values)
        if step + 1 == self.stop_after:
            os.kill(os.getpid(), signal.SIGINT)


def test_interrupted_and_resumed_run_follows_the_same_trajectory(tmp_path):
    toy = ToyConfig(dropout=0.3)  # dropout makes the global generator part of the trajectory
    seed_everything(0)
    straight = fit(tmp_path / "a", ToyMethod(toy), cfg())
    assert straight.stop_reason == "completed" and straight.step == 12

    seed_everything(0)
    first = fit(tmp_path / "b", InterruptedToy(toy), cfg())
    assert first.stop_reason == "interrupted" and first.step == 5
    seed_everything(12345)  # a fresh process: other weights, other random state
    resumed = fit(tmp_path / "b", ToyMethod(toy), cfg(), resume=True)
    assert resumed.step == 12 and resumed.stop_reason == "completed"

    log_a, log_b = read_log(tmp_path / "a"), read_log(tmp_path / "b")
    assert [r["step"] for r in log_b] == [str(s) for s in range(1, 13)]
    for ra, rb in zip(log_a, log_b, strict=True):
        assert ra["loss"] == rb["loss"] and ra["lr"] == rb["lr"], (ra, rb)
    from safetensors.torch import load_file

    a = load_file(str(list_checkpoints(tmp_path / "a" / "checkpoints")[-1] / "model.safetensors"))
    b = load_file(str(list_checkpoints(tmp_path / "b" / "checkpoints")[-1] / "model.safetensors"))
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_gradient_accumulation_equals_the_full_batch(tmp_path):
    toy = ToyConfig(loss="mse")
    results = []
    for acc in (1, 2, 4):
        seed_everything(0)
        m = ToyMethod(toy)
        fit(tmp_path / str(acc), m, cfg(max_steps=2, accumulate_steps=acc, optimizer="sgd", warmup_epochs=0))
        results.append({k: v.clone() for k, v in m.state_dict().items()})
    for other in results[1:]:
        for k in results[0]:
            torch.testing.assert_close(other[k], results[0][k], rtol=1e-5, atol=1e-6)


def test_hooks_receive_schedules_and_ema_follows(tmp_path):
    seed_everything(0)
    m = ToyMethod(ToyConfig(use_ema=True))
    fit(tmp_path, m, cfg(ema_momentum=0.5, ema_momentum_end=0.9))
    steps = [s for s, _ in m.hook_calls]
    assert steps == list(range(12))
    first, last = m.hook_calls[0][1], m.hook_calls[-1][1]
    assert {"lr", "weight_decay", "ema_momentum", "toy_ramp"} <= first.keys()
    assert first["ema_momentum"] == pytest.approx(0.5) and last["ema_momentum"] == pytest.approx(0.9)
    assert first["toy_ramp"] == 0.0 and last["toy_ramp"] == 1.0
    assert not torch.equal(m.ema.module.weight, m.backbone.weight)  # it lags behind
    assert "ema.module.weight" in m.state_dict()  # and is checkpointed with the method


def test_run_outputs_and_checkpoint_interval(tmp_path):
    seed_everything(0)
    fit(tmp_path, ToyMethod(), cfg(checkpoint_every=4, clip_grad=1.0))
    rows = read_log(tmp_path)
    assert len(rows) == 12
    assert {"step", "epoch", "loss", "lr", "weight_decay", "samples_per_s", "elapsed_s", "z_std", "grad_norm"} <= rows[
        0
    ].keys()
    assert float(rows[0]["lr"]) == 0.0 and float(rows[-1]["lr"]) == pytest.approx(
        0.0, abs=1e-12
    )  # warm-up, cosine to 0
    assert any(p.name.startswith("events") for p in (tmp_path / "tb").iterdir())
    assert (tmp_path / "plots" / "loss.png").stat().st_size > 1000
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["step_00000008", "step_00000012"]


def test_time_budget_shortens_the_schedule(tmp_path):
    seed_everything(0)
    planned = 10_000 * 4
    # 3 s: room for the 3 warm-up and 3 timed steps even on a loaded machine, far too little for 40,000 steps
    r = fit(tmp_path, ToyMethod(), cfg(epochs=10_000, max_minutes=0.05, budget_probe_steps=3), data=toy_dataset(64))
    assert r.total_steps < planned, "the schedules were not fitted to the budget"
    assert r.step <= r.total_steps and r.elapsed_s < 3 + 2
    if r.stop_reason == "completed":  # the fitted cosine ran to its end inside the budget
        lrs = [float(row["lr"]) for row in read_log(tmp_path)]
        assert lrs[-1] < 0.05 * max(lrs)


def test_time_budget_refits_when_the_machine_slows_down():
    from ssl_core.train.trainer import _Budget

    budget = _Budget(max_minutes=1, probe_steps=10, start_step=0, fitted=False)
    now, total, plans = 0.0, 10_000, []
    for step in range(1, 10_000):
        now += 0.1 if step <= 100 else 0.15  # the machine slows down by half after 100 steps
        out_of_time, new_total = budget.update(step, now, now, total)
        if new_total != total:
            plans.append(new_total)
            total = new_total
        if out_of_time or step >= total:
            break
    # first fit at 0.1 s a step: 13 + 0.97 * 58.7 / 0.1 steps; then shortened as the mean speed drops
    assert plans[0] == 13 + int(0.97 * (60 - 1.3) / 0.1) and len(plans) > 1
    assert step == total and not out_of_time, "the schedules did not end before the cap"
    assert all(a > b for a, b in itertools.pairwise(plans)), "the plan is only ever shortened"


def test_time_budget_keeps_a_plan_that_fits():
    from ssl_core.train.trainer import _Budget

    budget = _Budget(max_minutes=1, probe_steps=10, start_step=0, fitted=False)
    totals = {budget.update(step, 0.1 * step, 0.1 * step, 400)[1] for step in range(1, 400)}
    assert totals == {400}, "a plan that fits at a steady speed is left alone"


def test_max_steps_caps_epochs(tmp_path):
    r = fit(tmp_path, ToyMethod(), cfg(epochs=100, max_steps=7))
    assert r.step == r.total_steps == 7


def test_non_finite_loss_is_a_clear_error(tmp_path):
    data = toy_dataset(64)
    data[3] = float("nan")
    with pytest.raises(TrainingError, match="loss became nan at step 1.*lower train.lr"):
        fit(tmp_path, ToyMethod(), cfg(batch_size=64), data=data)


def test_too_little_data_for_one_batch(tmp_path):
    with pytest.raises(DataError, match="fewer than one batch"):
        fit(tmp_path, ToyMethod(), cfg(batch_size=128))


def test_resume_refuses_changed_data(tmp_path):
    fit(tmp_path, ToyMethod(), cfg(max_steps=2))
    with pytest.raises(Exception, match="the data or batch size changed"):
        fit(tmp_path, ToyMethod(), cfg(max_steps=4), data=toy_dataset(96), resume=True)


def test_bf16_autocast_on_cpu(tmp_path):
    seed_everything(0)
    r = fit(tmp_path, ToyMethod(), cfg(amp="bf16", max_steps=3))
    losses = [float(row["loss"]) for row in read_log(tmp_path)]
    assert r.step == 3 and all(torch.isfinite(torch.tensor(losses)))


def test_fp16_needs_cuda(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available: fp16 is allowed")
    with pytest.raises(Exception, match="fp16 needs CUDA"):
        fit(tmp_path, ToyMethod(), cfg(amp="fp16", max_steps=1))

"""The training loop, written once for every method of every modality."""

from __future__ import annotations

import contextlib
import math
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.profiler import record_function
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ssl_core import distributed as D
from ssl_core.errors import CheckpointError, DataError, SelfsupError
from ssl_core.method import Method
from ssl_core.train.checkpoint import (
    check_checkpoint,
    latest_checkpoint,
    load_checkpoint,
    load_weights,
    optimizer_state_from_flat,
    optimizer_state_to_flat,
    resume_fix,
    save_checkpoint,
)
from ssl_core.train.config import TrainConfig
from ssl_core.train.data import PretextDataset, SeededBatchSampler, to_device
from ssl_core.train.logger import RunLogger
from ssl_core.train.optim import build_optimizer, match_state_layout
from ssl_core.train.schedules import cosine_schedule


class TrainingError(SelfsupError):
    """Training cannot go on (e.g. the loss is no longer finite)."""


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` did.

    Args:
        step: optimizer steps completed (including those of an earlier run when resuming).
        total_steps: the length of the schedules (shortened from ``planned_steps`` when ``max_minutes`` fitted
            them to the time).
        stop_reason: ``"completed"``, ``"max_minutes"`` or ``"interrupted"``.
        samples_per_s: training throughput of this session (samples per second, all processes).
        elapsed_s: wall time of the training loop, all sessions of the run together.
        checkpoint: the last checkpoint written.
    """

    step: int
    total_steps: int
    stop_reason: str
    samples_per_s: float
    elapsed_s: float
    checkpoint: Path | None
    planned_steps: int = 0


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (model initialisation, dropout, ...)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state(device: torch.device) -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_rest": [int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    pos, has_gauss, cached = state["numpy_rest"]
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


_RNG_TENSORS = ("torch", "numpy_keys", "cuda")


def _rng_to_checkpoint(states: list[dict[str, Any]]) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Every rank's random state (:func:`_rng_state`) as checkpoint tensors (``rng/<rank>/<name>``) and the
    JSON-able rest, one entry per rank."""
    tensors = {f"rng/{r}/{k}": st[k] for r, st in enumerate(states) for k in _RNG_TENSORS if k in st}
    return tensors, [{"numpy_rest": st["numpy_rest"], "python": st["python"]} for st in states]


def _rng_from_checkpoint(tensors: dict[str, torch.Tensor], rest: list[dict[str, Any]], rank: int) -> dict[str, Any]:
    """The random state of ``rank`` from a checkpoint written by :func:`_rng_to_checkpoint`."""
    state = {k: tensors[f"rng/{rank}/{k}"] for k in _RNG_TENSORS if f"rng/{rank}/{k}" in tensors}
    return {**state, **rest[rank]}


class _StopSignals:
    """Turns the first SIGINT/SIGTERM into a request to stop after the current step (with a checkpoint);
    a second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def _first_non_finite(
    loss: torch.Tensor, step: int, first_bad: torch.Tensor | None, scaler: torch.amp.GradScaler
) -> torch.Tensor | None:
    """``[step, loss]`` of the first step whose loss was not finite (``[-1, 0]``: none yet), kept on the
    loss's device so that tracking it does not wait for the step; fp16's loss scaler handles overflows."""
    if scaler.is_enabled():
        return None
    if first_bad is None:
        first_bad = torch.tensor([-1.0, 0.0], device=loss.device)
    new = (~torch.isfinite(loss)) & (first_bad[0] < 0)
    return torch.where(new, torch.stack([torch.full_like(loss, step), loss.float()]), first_bad)


class _Budget:
    """``train.max_minutes``: once the speed is known, fit the schedules into the minutes, check the fit as
    the run goes on, and stop when the minutes are spent.

    The first three steps are slower (allocation, caches); the next ``probe_steps`` are timed, and the
    schedules are planned to end at 97% of the time left at that speed, so that jitter does not cut them
    short. Every ``probe_steps`` steps after that the plan is checked against the mean speed since timing
    began, and shortened again (never lengthened) when the steps would not fit: a machine that slows down
    after the first steps still ends its schedules (learning rate at zero) before the cap stops it. Each
    decision is checkpointed. The plan depends on the machine's speed: a run with a minute cap is
    reproducible on one machine, and a fixed ``--epochs`` / ``--max-steps`` without one is reproducible
    everywhere."""

    MARGIN = 0.97

    def __init__(self, max_minutes: float | None, probe_steps: int, start_step: int, fitted: bool) -> None:
        self.seconds = None if max_minutes is None else 60 * max_minutes
        self.probe_steps, self.start_step, self.fitted = probe_steps, start_step, fitted
        self._t0: float | None = None
        self._from = 0

    def update(self, step: int, now: float, elapsed: float, total_steps: int) -> tuple[bool, int]:
        """After step ``step`` (``now``: perf_counter; ``elapsed``: seconds of training so far): whether the
        time is spent, and the (possibly shortened) total number of steps."""
        if self.seconds is None:
            return False, total_steps
        if self._t0 is None:
            if step - self.start_step >= 3:
                self._t0, self._from = now, step
        elif (step - self._from) % self.probe_steps == 0:
            left = (self.seconds - elapsed) / ((now - self._t0) / (step - self._from))  # steps that still fit
            # the first fit, or a plan that would now overrun: end at 97% of the time left
            if not self.fitted or step + left < total_steps:
                total_steps = min(total_steps, step + max(0, int(self.MARGIN * left)))
            self.fitted = True
        return elapsed >= self.seconds, total_steps


class Trainer:
    """Optimises a :class:`~ssl_core.method.Method` on a dataset of raw samples.

    The trainer knows nothing about modalities: it applies the method's pretext to each sample (seeded
    per sample, see :mod:`ssl_core.train.data`), moves batches to the device with
    :func:`~ssl_core.train.data.to_device`, steps the optimizer under per-iteration schedules, calls the
    method's :meth:`~ssl_core.method.Method.after_optimizer_step` hook, logs, and checkpoints. Under
    ``torchrun`` it wraps the method in DDP, shards the data by rank, and only rank 0 logs and writes.

    Args:
        method: the method to train (its ``backbone`` is what users keep).
        dataset: raw samples; ``method.pretext()`` turns each into a training item.
        config: the training settings.
        run_dir: the run folder (``log.csv``, ``tb/``, ``checkpoints/``, ``plots/``).
        dist_info: where this process sits in the job; by default read from ``torchrun``'s environment.
        collate_fn: how to batch training items (default: the method's :meth:`~ssl_core.method.Method.collate`).
    """

    def __init__(
        self,
        method: Method,
        dataset: Dataset,
        config: TrainConfig,
        run_dir: str | Path,
        dist_info: D.DistInfo | None = None,
        collate_fn: Callable | None = None,
    ) -> None:
        self.method, self.dataset, self.config = method, dataset, config
        self.run_dir = Path(run_dir)
        self.dist = dist_info or D.init_distributed(config.device)
        self.collate_fn = collate_fn if collate_fn is not None else method.collate()
        self.ckpt_dir = self.run_dir / "checkpoints"

        world = self.dist.world_size
        per_rank, rem = divmod(config.batch_size, world * config.accumulate_steps)
        if rem or per_rank == 0:
            raise SelfsupError(
                f"train.batch_size={config.batch_size} must be a multiple of processes x accumulate_steps "
                f"({world} x {config.accumulate_steps})"
            )
        self.micro_batch = per_rank
        self.sampler = SeededBatchSampler(len(dataset), per_rank, config.seed, self.dist.rank, world)
        self.steps_per_epoch = self.sampler.batches_per_epoch // config.accumulate_steps
        if self.steps_per_epoch == 0:
            raise DataError(
                f"the data has {len(dataset)} samples, fewer than one batch of {config.batch_size}; "
                "lower train.batch_size or add data"
            )
        self.total_steps = max(1, math.ceil(config.epochs * self.steps_per_epoch))
        if config.max_steps is not None:
            self.total_steps = min(self.total_steps, config.max_steps)
        self.planned_steps = self.total_steps  # before max_minutes fits the schedules to the time
        self.budget_fitted = False

    # ----------------------------------------------------------------------------------------- schedules
    def _schedules(self) -> dict[str, np.ndarray]:
        c, n = self.config, self.total_steps
        warmup = round(c.warmup_epochs * self.steps_per_epoch)
        wd_end = c.weight_decay if c.weight_decay_end is None else c.weight_decay_end
        sched = {
            "lr": cosine_schedule(c.peak_lr, c.min_lr, n, warmup),
            "weight_decay": cosine_schedule(c.weight_decay, wd_end, n),
            "ema_momentum": cosine_schedule(c.ema_momentum, c.ema_momentum_end, n),
        }
        for k, v in self.method.schedules(n, self.steps_per_epoch).items():
            if len(v) != n:
                raise ValueError(f"schedule {k!r} of {type(self.method).__name__} has {len(v)} steps, expected {n}")
            sched[k] = np.asarray(v)
        return sched

    # --------------------------------------------------------------------------------------- checkpoints
    def _save(self, step: int, optimizer, scaler, elapsed: float) -> Path | None:
        rngs = D.all_gather_object(_rng_state(self.dist.device))  # every rank takes part
        path = None
        if self.dist.is_main:
            tensors, optim_meta = optimizer_state_to_flat(optimizer.state_dict())
            rng_tensors, py_rng = _rng_to_checkpoint(rngs)
            tensors.update(rng_tensors)
            state = {
                "epoch": step // self.steps_per_epoch,
                "total_steps": self.total_steps,
                "budget_fitted": self.budget_fitted,
                "steps_per_epoch": self.steps_per_epoch,
                "num_samples": len(self.dataset),
                "seed": self.config.seed,
                "world_size": self.dist.world_size,
                "elapsed_s": elapsed,
                "optimizer": optim_meta,
                "rng": py_rng,
                "scaler": scaler.state_dict() if scaler.is_enabled() else None,
            }
            path = save_checkpoint(self.ckpt_dir, step, self.method, state, tensors, self.config.keep_checkpoints)
        D.barrier()
        return path

    def _resume(self, source: bool | str | Path, optimizer, scaler) -> tuple[int, float]:
        path = latest_checkpoint(self.ckpt_dir) if source is True else Path(source)
        if path is None:
            raise CheckpointError(f"no checkpoint to resume from in {self.ckpt_dir}")
        fix = resume_fix(path)
        check_checkpoint(path, fix=fix)
        ckpt = load_checkpoint(path, fix=fix)
        st = ckpt.state
        if st["num_samples"] != len(self.dataset) or st["steps_per_epoch"] != self.steps_per_epoch:
            raise CheckpointError(
                f"{path} was written for {st['num_samples']} samples and {st['steps_per_epoch']} steps per epoch, "
                f"but this run has {len(self.dataset)} and {self.steps_per_epoch}: the data or batch size changed; "
                "resume with the same settings or start a new run"
            )
        load_weights(self.method, path, fix=fix)
        optimizer.load_state_dict(optimizer_state_from_flat(ckpt.tensors, st["optimizer"]))
        match_state_layout(optimizer)
        if st.get("scaler") and scaler.is_enabled():
            scaler.load_state_dict(st["scaler"])
        self.total_steps, self.budget_fitted = st["total_steps"], st["budget_fitted"]
        if st["world_size"] == self.dist.world_size:
            _set_rng_state(_rng_from_checkpoint(ckpt.tensors, st["rng"], self.dist.rank), self.dist.device)
        elif self.dist.is_main:
            print(
                f"note: the checkpoint was written by {st['world_size']} processes; random streams restart",
                file=sys.stderr,
            )
        return ckpt.step, float(st["elapsed_s"])

    # ------------------------------------------------------------------------------------------- the loop
    def _microbatches(self, loader: DataLoader, start_step: int):
        """Yield micro-batches from ``start_step`` on, epoch after epoch (each epoch ends where its last
        complete group of ``accumulate_steps`` micro-batches ends)."""
        acc = self.config.accumulate_steps
        epoch, step_in_epoch = divmod(start_step, self.steps_per_epoch)
        while True:
            self.sampler.set_epoch(epoch, step_in_epoch * acc, self.steps_per_epoch * acc)
            yield from loader
            epoch, step_in_epoch = epoch + 1, 0

    def fit(self, resume: bool | str | Path = False) -> TrainResult:
        """Train until the budget is spent, the run is interrupted (SIGINT/SIGTERM), or the schedule ends.

        Args:
            resume: ``True`` to continue from the latest checkpoint in ``run_dir``, a checkpoint path to
                continue from that one, ``False`` to start afresh.
        """
        c = self.config
        method, model = self._prepare_model()
        optimizer = build_optimizer(method, c)
        scaler, amp_dtype = self._precision()
        step, elapsed_before = self._resume(resume, optimizer, scaler) if resume else (0, 0.0)
        sched = self._schedules()
        batches = self._microbatches(self._loader(method), step)
        logger = RunLogger(self.run_dir, enabled=self.dist.is_main, resume_step=step if resume else None)
        bar = self._progress_bar(step)
        budget = _Budget(c.max_minutes, c.budget_probe_steps, step, self.budget_fitted)
        t_start, start_step = time.perf_counter(), step
        stop_reason, ckpt_path, first_bad = "completed", None, None
        with _StopSignals() as signals:
            while step < self.total_steps:
                t_step = time.perf_counter()
                values = {k: float(v[step]) for k, v in sched.items()}
                for g in optimizer.param_groups:
                    g["lr"] = values["lr"]
                    if g.get("apply_weight_decay", True):
                        g["weight_decay"] = values["weight_decay"]
                method.begin_step(step, values)
                loss, logs = self._step(model, method, batches, optimizer, scaler, amp_dtype)
                method.after_optimizer_step(step, values)
                first_bad = _first_non_finite(loss, step, first_bad, scaler)
                step += 1

                now = time.perf_counter()
                elapsed = elapsed_before + (now - t_start)
                if step % c.log_every == 0 or step == self.total_steps:  # the loss reaches the host here only
                    self._check_finite(first_bad, sched)
                    rate = c.batch_size / max(now - t_step, 1e-9)
                    row = {"loss": float(loss), **{k: float(v) for k, v in logs.items()}}
                    logger.log(step, {"epoch": step / self.steps_per_epoch, **row, "lr": values["lr"],
                                      "weight_decay": values["weight_decay"], "samples_per_s": rate,
                                      "elapsed_s": elapsed})  # fmt: skip
                    if bar is not None:
                        bar.set_postfix(loss=f"{row['loss']:.4f}", samples_per_s=f"{rate:.0f}", refresh=False)
                if bar is not None:
                    bar.update(1)

                out_of_time, new_total = budget.update(step, now, elapsed, self.total_steps)
                self.budget_fitted = budget.fitted
                stop, new_total = self._agree(signals.requested or out_of_time, new_total)
                if new_total != self.total_steps:
                    if self.dist.is_main:
                        tqdm.write(
                            f"max_minutes={c.max_minutes}: the {self.total_steps} planned steps do not fit; "
                            f"the schedules now end at step {new_total}",
                            file=sys.stderr,
                        )
                    self.total_steps = new_total
                    sched = self._schedules()
                    if bar is not None:
                        bar.total = new_total
                if stop and step < self.total_steps:
                    stop_reason = "interrupted" if signals.requested else "max_minutes"
                    break
                if c.checkpoint_every and step % c.checkpoint_every == 0 and step < self.total_steps:
                    with record_function("train/checkpoint"):
                        ckpt_path = self._save(step, optimizer, scaler, elapsed)
        self._check_finite(first_bad, sched)
        elapsed = elapsed_before + (time.perf_counter() - t_start)
        with record_function("train/checkpoint"):
            ckpt_path = self._save(step, optimizer, scaler, elapsed)
        if bar is not None:
            bar.close()
        logger.close()
        logger.plot_loss()
        if self.dist.is_main and stop_reason != "completed":
            print(f"stopped at step {step}/{self.total_steps} ({stop_reason}); checkpoint {ckpt_path}", file=sys.stderr)
        session = time.perf_counter() - t_start
        rate = (step - start_step) * c.batch_size / session if session > 0 else 0.0
        return TrainResult(step, self.total_steps, stop_reason, rate, elapsed, ckpt_path, self.planned_steps)

    # ------------------------------------------------------------------------------------ parts of fit
    def _prepare_model(self) -> tuple[Method, torch.nn.Module]:
        """The method on its device and memory format, in training mode, and the module to call (DDP's
        wrapper under torchrun)."""
        c, dev = self.config, self.dist.device
        if c.threads is not None:
            torch.set_num_threads(c.threads)
        method = self.method.to(dev)
        if c.channels_last:
            method = method.to(memory_format=torch.channels_last)
        method.train()
        if not self.dist.distributed:
            return method, method
        ddp = DistributedDataParallel(
            method,
            device_ids=[dev.index] if dev.type == "cuda" else None,
            find_unused_parameters=method.ddp_find_unused_parameters,
        )
        return method, ddp

    def _precision(self) -> tuple[torch.amp.GradScaler, torch.dtype | None]:
        """The loss scaler (fp16 on CUDA) and the autocast dtype of ``train.amp``."""
        c, dev = self.config, self.dist.device
        if c.amp == "fp16" and dev.type != "cuda":
            raise SelfsupError("train.amp=fp16 needs CUDA; use train.amp=bf16 on CPU")
        scaler = torch.amp.GradScaler("cuda", enabled=c.amp == "fp16" and dev.type == "cuda")
        return scaler, {"bf16": torch.bfloat16, "fp16": torch.float16}.get(c.amp)

    def _loader(self, method: Method) -> DataLoader:
        c = self.config
        return DataLoader(
            PretextDataset(self.dataset, method.pretext()),
            batch_sampler=self.sampler,
            num_workers=c.num_workers,
            collate_fn=self.collate_fn,
            pin_memory=self.dist.device.type == "cuda",
            # its own generator: creating an iterator must not draw from the global one, or a run resumed
            # mid-epoch would see another random stream than the uninterrupted run
            generator=torch.Generator().manual_seed(c.seed),
        )

    def _progress_bar(self, step: int) -> tqdm | None:
        if not (self.dist.is_main and self.config.progress):
            return None
        return tqdm(
            total=self.total_steps,
            initial=step,
            desc="pretrain",
            unit="step",
            dynamic_ncols=True,
            mininterval=1.0 if sys.stderr.isatty() else 15.0,
            file=sys.stderr,
        )

    def _step(self, model, method: Method, batches, optimizer, scaler, amp_dtype) -> tuple[torch.Tensor, dict]:
        """One optimizer step over ``accumulate_steps`` micro-batches; the loss and logs stay on the device
        (detached): they reach the host only when they are logged."""
        c, dev = self.config, self.dist.device
        optimizer.zero_grad(set_to_none=True)
        loss_sum, logs = torch.zeros((), device=dev), {}
        for i in range(c.accumulate_steps):
            with record_function("train/data"):  # named ranges: benchmarks/profile_run.py reads them
                batch = to_device(next(batches), dev, c.channels_last)
            sync = contextlib.nullcontext()
            if self.dist.distributed and i < c.accumulate_steps - 1:
                sync = model.no_sync()
            with sync:
                with (
                    record_function("train/forward"),
                    torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None),
                ):
                    out = model(batch)
                    loss = out.loss / c.accumulate_steps
                with record_function("train/backward"):
                    scaler.scale(loss).backward()
            loss_sum += loss.detach()
            for k, v in out.logs.items():
                v = v.detach() if isinstance(v, torch.Tensor) else v
                logs[k] = logs.get(k, 0.0) + v / c.accumulate_steps
        with record_function("train/optimizer"):
            if c.clip_grad is not None:
                scaler.unscale_(optimizer)
                logs["grad_norm"] = torch.nn.utils.clip_grad_norm_(method.parameters(), c.clip_grad).detach()
            scaler.step(optimizer)
            scaler.update()
        return loss_sum, logs

    def _check_finite(self, first_bad: torch.Tensor | None, sched: dict[str, np.ndarray]) -> None:
        """Stop with a clear error if a step's loss was not finite (checked where the loss is logged)."""
        if first_bad is None:
            return
        index, value = first_bad.tolist()
        if index < 0:
            return
        last = latest_checkpoint(self.ckpt_dir)
        raise TrainingError(
            f"the loss became {value} at step {int(index) + 1} (lr {sched['lr'][int(index)]:.3g}); lower "
            "train.lr, set train.clip_grad (e.g. 1.0) or use train.amp=none"
            + (f"; the last good checkpoint is {last}" if last else "")
        )

    def _agree(self, stop: bool, new_total: int) -> tuple[bool, int]:
        """Make every rank take rank 0's decisions (a stop request on any rank stops all)."""
        if not self.dist.distributed:
            return stop, new_total
        flags = torch.tensor([float(stop), float(new_total if self.dist.is_main else 0)], device=self.dist.device)
        stop_t = flags[:1].clone()
        dist.all_reduce(stop_t, op=dist.ReduceOp.MAX)
        dist.broadcast(flags, src=0)
        return bool(stop_t.item()), int(flags[1].item())

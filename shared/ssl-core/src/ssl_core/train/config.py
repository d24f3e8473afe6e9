"""Training settings: one typed dataclass, given to the trainer and nothing else."""

from __future__ import annotations

from dataclasses import dataclass

from ssl_core.errors import ConfigError

OPTIMIZERS = ("adamw", "lars", "sgd")
AMP_MODES = ("none", "bf16", "fp16")


@dataclass
class TrainConfig:
    """How to optimise a method. Every value can be overridden with ``--set train.<name>=<value>``.

    Budget: the run takes ``epochs`` passes over the data, stopped earlier by ``max_steps`` when given.
    ``max_minutes`` bounds wall time: the trainer times ``budget_probe_steps`` steps (after three warm-up
    steps), and if the planned steps do not fit it shortens the schedules so that they end inside the
    budget; it checks the fit again every ``budget_probe_steps`` steps at the mean speed so far and
    shortens again if the machine slowed down (each decision is logged and checkpointed, so a resumed run
    keeps it); the loop also stops when the budget is spent.

    Args:
        epochs: passes over the pretraining data.
        max_steps: stop after this many optimizer steps (``None``: no limit).
        max_minutes: wall-clock budget of the training loop (``None``: no limit).
        batch_size: samples per optimizer step, summed over processes and accumulation steps.
        accumulate_steps: micro-batches per optimizer step (gradient accumulation). Note that for
            contrastive losses each micro-batch only sees its own negatives.
        optimizer: ``adamw``, ``lars`` (You et al., 2017; SimCLR/BYOL) or ``sgd``.
        lr: peak learning rate (after warm-up).
        lr_scale_batch: if true, the peak learning rate is ``lr * batch_size / 256`` (Goyal et al., 2017).
        min_lr: learning rate at the end of the cosine decay.
        warmup_epochs: linear warm-up from 0 to the peak, in epochs (may be fractional).
        weight_decay / weight_decay_end: cosine schedule of weight decay (DINO raises it over training).
        ema_momentum / ema_momentum_end: cosine schedule of the EMA teacher momentum (BYOL: 0.996 -> 1).
        momentum: SGD/LARS momentum; AdamW uses ``betas``.
        betas: AdamW betas.
        lars_eta: LARS trust coefficient.
        clip_grad: clip the global gradient norm to this value (``None``: no clipping).
        amp: autocast precision: ``none``, ``bf16`` (CPU and CUDA) or ``fp16`` (CUDA, with loss scaling).
        channels_last: use channels-last memory format for 4-D inputs and weights (faster convolutions).
        seed: seeds the model initialisation, the data order and every augmentation.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        num_workers: data-loader worker processes (0: load in the training process).
        threads: torch intra-op threads of the training process (``None``: torch's default, one per core).
            Small models (graph networks of a few thousand parameters) run fastest with 1, and much faster
            than with several when other jobs share the cores.
        log_every: steps between log rows in ``log.csv`` and TensorBoard.
        checkpoint_every: steps between checkpoints (``0``: only at the end and on interruption).
        keep_checkpoints: how many recent checkpoints to keep.
        budget_probe_steps: steps timed (after three warm-up steps) to fit the schedules to ``max_minutes``,
            and the interval at which the fit is checked again.
        progress: show a progress bar.
    """

    epochs: float = 1.0
    max_steps: int | None = None
    max_minutes: float | None = None
    batch_size: int = 256
    accumulate_steps: int = 1
    optimizer: str = "adamw"
    lr: float = 1e-3
    lr_scale_batch: bool = False
    min_lr: float = 0.0
    warmup_epochs: float = 0.0
    weight_decay: float = 1e-4
    weight_decay_end: float | None = None
    ema_momentum: float = 0.996
    ema_momentum_end: float = 1.0
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    lars_eta: float = 0.001
    clip_grad: float | None = None
    amp: str = "none"
    channels_last: bool = False
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    threads: int | None = None
    log_every: int = 1
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    budget_probe_steps: int = 20
    progress: bool = True

    def __post_init__(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ConfigError(f"train.{msg}")

        need(self.epochs > 0, f"epochs must be positive, got {self.epochs}")
        need(self.max_steps is None or self.max_steps > 0, f"max_steps must be positive, got {self.max_steps}")
        need(self.max_minutes is None or self.max_minutes > 0, f"max_minutes must be positive, got {self.max_minutes}")
        need(self.batch_size > 0, f"batch_size must be positive, got {self.batch_size}")
        need(self.accumulate_steps > 0, f"accumulate_steps must be positive, got {self.accumulate_steps}")
        need(self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        need(self.lr > 0, f"lr must be positive, got {self.lr}")
        need(self.amp in AMP_MODES, f"amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        need(self.device in ("auto", "cpu", "cuda"), f"device must be auto, cpu or cuda, got {self.device!r}")
        need(self.clip_grad is None or self.clip_grad > 0, f"clip_grad must be positive, got {self.clip_grad}")
        need(self.num_workers >= 0, f"num_workers must be >= 0, got {self.num_workers}")
        need(self.threads is None or self.threads > 0, f"threads must be positive, got {self.threads}")
        need(self.log_every > 0, f"log_every must be positive, got {self.log_every}")
        need(self.checkpoint_every >= 0, f"checkpoint_every must be >= 0, got {self.checkpoint_every}")
        need(self.keep_checkpoints > 0, f"keep_checkpoints must be positive, got {self.keep_checkpoints}")
        need(0 <= self.ema_momentum <= 1 and 0 <= self.ema_momentum_end <= 1, "ema_momentum values must lie in [0, 1]")

    @property
    def peak_lr(self) -> float:
        """The learning rate after warm-up, with the linear batch-size scaling when enabled."""
        return self.lr * self.batch_size / 256 if self.lr_scale_batch else self.lr

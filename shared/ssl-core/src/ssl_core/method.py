"""The contract between a modality package's methods and the core's trainer, probes and export."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass
class MethodOutput:
    """What :meth:`Method.forward` returns.

    Args:
        loss: the scalar to minimise.
        logs: extra scalars to log (detached floats or 0-d tensors), e.g. ``{"pos_sim": 0.8}``.
    """

    loss: torch.Tensor
    logs: dict[str, float | torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class BackboneSpec:
    """How to rebuild a method's backbone from the modality's registry.

    Args:
        name: key in :attr:`ssl_core.registry.Modality.backbones`, e.g. ``"resnet"``.
        config: keyword arguments of that builder (JSON-serialisable).
        embed_dim: size of the embedding the backbone outputs.
        input: what the backbone expects (shape, normalisation), written into exports for users.
    """

    name: str
    config: dict[str, Any]
    embed_dim: int
    input: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """The optimizer step about to be taken, as the trainer hands it to :meth:`Method.begin_step`.

    Args:
        index: the step's index, 0-based (the number of steps taken before it).
        values: its schedule values: ``lr``, ``weight_decay``, ``ema_momentum`` and those of
            :meth:`Method.schedules` (e.g. DINO's ``teacher_temp``).
    """

    index: int
    values: Mapping[str, float]

    def __getitem__(self, name: str) -> float:
        return self.values[name]


class Method(nn.Module):
    """A self-supervised method: a backbone (what users keep), its heads and its objective.

    Subclasses implement :meth:`forward`, :meth:`pretext` and :meth:`backbone_spec`, and set
    ``self.backbone``. Everything else has a default that suits methods without teachers or queues.
    Teachers, queues and centres are ordinary submodules or buffers, so they are checkpointed with the
    method. A method keeps no step counter of its own: before each step's ``forward`` the trainer calls
    :meth:`begin_step`, and ``forward`` reads the step and its schedule values from :attr:`current_step`
    (recomputed from the schedules on resume, so a resumed run sees the values of the uninterrupted one).

    Attributes the trainer reads:
        ddp_find_unused_parameters: tell DDP that some parameters may get no gradient in a step (a head
            frozen for the first steps); ``False`` by default, which is faster.
    """

    backbone: nn.Module
    ddp_find_unused_parameters: bool = False
    _current_step: Step | None = None

    def forward(self, batch: Any) -> MethodOutput:  # pragma: no cover - abstract
        """Compute the loss of one (micro)batch as produced by :meth:`pretext` and collated."""
        raise NotImplementedError

    def pretext(self) -> Callable[[Any], Any]:  # pragma: no cover - abstract
        """Return the picklable function ``sample -> training item`` (views, masks, targets).

        It runs in data-loader workers and must draw its randomness from torch's global generator,
        which the trainer seeds per sample, so that a resumed run sees the same views. A pretext may also
        have a ``collate(items)`` method, which then batches its items (see :meth:`collate`): the way to
        draw random parameters per sample and do the heavy work once per batch.
        """
        raise NotImplementedError

    def backbone_spec(self) -> BackboneSpec:  # pragma: no cover - abstract
        """Describe the backbone for export (see :func:`ssl_core.export.load_backbone`)."""
        raise NotImplementedError

    def collate(self) -> Callable[[list[Any]], Any] | None:
        """How to batch training items: the pretext's ``collate`` method when it has one, else ``None``
        (torch's ``default_collate``)."""
        return getattr(self.pretext(), "collate", None)

    @torch.no_grad()
    def embed(self, x: Any) -> torch.Tensor:
        """Embeddings used by the probes and by export: the backbone's output, ``(B, embed_dim)``."""
        return self.backbone(x)

    @torch.no_grad()
    def head_scores(self, bundle: Any, device: torch.device) -> Mapping[str, float]:
        """Scores of the method's own heads on the probe data, added as columns to its row of the probe table.

        For recipes whose objective trains a predictor the frozen-feature probes do not see: a supervised
        recipe's classifier (SLA's aggregated top-1), a segmentation decoder (its target-domain mIoU). The
        run calls it on the pretrained method and on the untrained one (the ``random_init`` row), in eval
        mode. Default: none.

        Args:
            bundle: the run's :class:`~ssl_core.data.DataBundle`.
            device: where to compute.

        Returns:
            ``column -> score`` (fractions, like the probes' accuracies).
        """
        return {}

    def schedules(self, total_steps: int, steps_per_epoch: int) -> Mapping[str, np.ndarray]:
        """Per-iteration schedules the method needs beyond lr / weight decay / EMA momentum.

        Returns arrays of length ``total_steps``, computed here and nowhere else (no caches: the trainer
        calls this again when a time budget shortens the run); each step's values reach :meth:`begin_step`
        before its ``forward`` and :meth:`after_optimizer_step` after it (e.g. a teacher temperature).
        """
        return {}

    def begin_step(self, step: int, values: Mapping[str, float]) -> None:
        """Hook run by the trainer before each step's ``forward``: keep the step for :attr:`current_step`.

        Args:
            step: the index of the step about to be taken (0-based).
            values: its schedule values (see :class:`Step`).
        """
        self._current_step = Step(step, dict(values))

    @property
    def current_step(self) -> Step:
        """The step being taken and its schedule values, as :meth:`begin_step` received them."""
        if self._current_step is None:
            raise RuntimeError(
                f"{type(self).__name__}.forward reads the step's schedule values: call begin_step(step, values) "
                "before it (the trainer does; in tests, ssl_core.testing.begin_step)"
            )
        return self._current_step

    def after_optimizer_step(self, step: int, values: Mapping[str, float]) -> None:
        """Hook run after every optimizer step (EMA teacher updates, queue bookkeeping).

        Args:
            step: the index of the step just taken (0-based).
            values: this step's schedule values: ``lr``, ``weight_decay``, ``ema_momentum`` and those of
                :meth:`schedules`.
        """

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


class Method(nn.Module):
    """A self-supervised method: a backbone (what users keep), its heads and its objective.

    Subclasses implement :meth:`forward`, :meth:`pretext` and :meth:`backbone_spec`, and set
    ``self.backbone``. Everything else has a default that suits methods without teachers or queues.
    Teachers, queues and centres are ordinary submodules or buffers, so they are checkpointed with the
    method.
    """

    backbone: nn.Module

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

    def schedules(self, total_steps: int, steps_per_epoch: int) -> Mapping[str, np.ndarray]:
        """Per-iteration schedules the method needs beyond lr / weight decay / EMA momentum.

        Returns arrays of length ``total_steps``; their current values are passed to
        :meth:`after_optimizer_step` (e.g. a teacher temperature).
        """
        return {}

    def after_optimizer_step(self, step: int, values: Mapping[str, float]) -> None:
        """Hook run after every optimizer step (EMA teacher updates, queue bookkeeping).

        Args:
            step: the index of the step just taken (0-based).
            values: this step's schedule values: ``lr``, ``weight_decay``, ``ema_momentum`` and those of
                :meth:`schedules`.
        """

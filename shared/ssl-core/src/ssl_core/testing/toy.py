"""A tiny method on random vectors: exercises the trainer end to end in milliseconds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ssl_core.losses import nt_xent
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_core.teacher import EMATeacher


@dataclass
class ToyConfig:
    """Settings of :class:`ToyMethod`.

    Args:
        dim: input size.
        embed_dim: backbone output size.
        loss: ``"nt_xent"`` (contrastive, batch-coupled) or ``"mse"`` (a mean over samples, so gradient
            accumulation is exact).
        noise: standard deviation of the view noise.
        use_ema: keep an EMA copy of the backbone, updated by the ``after_optimizer_step`` hook.
        dropout: dropout on the embeddings (draws from the global generator during the forward pass).
    """

    dim: int = 8
    embed_dim: int = 4
    loss: str = "nt_xent"
    noise: float = 0.1
    use_ema: bool = False
    dropout: float = 0.0


class _Views:
    def __init__(self, noise: float) -> None:
        self.noise = noise

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x + self.noise * torch.randn_like(x), x + self.noise * torch.randn_like(x)


class ToyMethod(Method):
    """Linear backbone + linear head on two noisy views of a vector."""

    def __init__(self, config: ToyConfig | None = None, info: object = None) -> None:
        super().__init__()
        self.config = config = config or ToyConfig()
        self.backbone = nn.Linear(config.dim, config.embed_dim)
        self.head = nn.Linear(config.embed_dim, config.embed_dim)
        if config.use_ema:
            self.ema = EMATeacher(self.backbone)
        self.hook_calls: list[tuple[int, dict[str, float]]] = []

    def pretext(self) -> _Views:
        return _Views(self.config.noise)

    def forward(self, batch) -> MethodOutput:
        x1, x2 = batch
        drop = lambda h: nn.functional.dropout(h, self.config.dropout, self.training)  # noqa: E731
        z1, z2 = self.head(drop(self.backbone(x1))), self.head(drop(self.backbone(x2)))
        if self.config.loss == "mse":
            loss = (z1 - z2.flip(1)).pow(2).mean()
        else:
            loss = nt_xent(z1, z2, 0.5, gather_distributed=True)
        return MethodOutput(loss, {"z_std": z1.detach().std()})

    def after_optimizer_step(self, step: int, values) -> None:
        self.hook_calls.append((step, dict(values)))
        if self.config.use_ema:
            self.ema.update(self.backbone, values["ema_momentum"])

    def schedules(self, total_steps: int, steps_per_epoch: int):
        return {"toy_ramp": np.linspace(0, 1, total_steps)}

    def backbone_spec(self) -> BackboneSpec:
        return BackboneSpec(
            "linear", {"dim": self.config.dim, "embed_dim": self.config.embed_dim}, self.config.embed_dim
        )


def toy_dataset(n: int = 64, dim: int = 8, seed: int = 0) -> torch.Tensor:
    """``n`` random vectors of size ``dim`` (a tensor is a valid dataset of its rows)."""
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))

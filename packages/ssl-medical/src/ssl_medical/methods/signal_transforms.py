"""Signal transformation recognition (Sarkar & Etemad, 2020, "Self-supervised ECG Representation Learning for Emotion
Recognition"), here on a transformer encoder (:class:`~ssl_medical.models.signal_transformer.SignalTransformer`).

Every series ``x`` becomes ``1 + K`` copies: ``x`` itself and ``T_k(x)`` for each of the ``K`` transformations of
:mod:`ssl_medical.transforms.signal` (noise at 15 dB SNR, scaling by 1.1, negation, horizontal flip, permutation of
20 segments, time warping of 9 segments by 1.05; the parameters of the authors' code). The shared encoder embeds all
copies and one of two objectives trains it:

- ``binary`` (the paper's multi-task network, the default): one head per transformation, each a small MLP with one
  logit, answers "was transformation k applied?". Head ``k`` is trained, as in the paper, on the pair
  ``(x, T_k(x))`` with binary cross-entropy (target 0 for the original, 1 for the transformed copy); the loss is the
  mean over the ``K`` tasks (the paper's task weights are all equal here).
- ``softmax``: one head with ``1 + K`` classes names which copy it sees (the original or which transformation).
  Unlike the binary tasks it must also tell the transformations apart from each other (a flipped from a negated
  series), a harder task, with the same cost.

Randomness: the noise, the permutation orders and the warped pieces are drawn per sample by the pretext from torch's
global generator, which the trainer seeds per sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.errors import ConfigError
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_medical.info import SignalInfo
from ssl_medical.models.signal_transformer import SignalTransformer, SignalTransformerConfig
from ssl_medical.transforms.signal import SignalTransformConfig, apply_transform


@dataclass
class SignalTransformsConfig:
    """Transformation recognition settings (``--set method.<name>=<value>``).

    Args:
        backbone: the transformer encoder (its ``in_channels`` and ``length`` are set from the data).
        transforms: which transformations and their parameters
            (:class:`~ssl_medical.transforms.signal.SignalTransformConfig`).
        objective: ``binary`` (one "was transformation k applied" head each, the paper) or ``softmax`` (one head
            over the original and the transformations).
        head_hidden: hidden units of each head's MLP (the paper: two dense layers of 128; here one).
    """

    backbone: SignalTransformerConfig = field(default_factory=SignalTransformerConfig)
    transforms: SignalTransformConfig = field(default_factory=SignalTransformConfig)
    objective: str = "binary"
    head_hidden: int = 128

    def __post_init__(self) -> None:
        if isinstance(self.backbone, dict):
            self.backbone = SignalTransformerConfig(**self.backbone)
        if isinstance(self.transforms, dict):
            self.transforms = SignalTransformConfig(**self.transforms)
        if self.objective not in ("binary", "softmax"):
            raise ConfigError(f"method.objective must be 'binary' or 'softmax', got {self.objective!r}")
        if self.head_hidden < 1:
            raise ConfigError(f"method.head_hidden must be positive, got {self.head_hidden}")


class TransformedCopies:
    """The pretext: a ``(C, L)`` series -> ``(1 + K, C, L)``: the series, then each transformation of it in the
    order of ``config.names``.

    Args:
        config: the transformations and their parameters.
    """

    def __init__(self, config: SignalTransformConfig) -> None:
        self.config = config

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The original and its ``K`` transformed copies (randomness from torch's global generator)."""
        if x.ndim != 2:
            raise ValueError(f"a sample must be one (C, L) series, got shape {tuple(x.shape)}")
        x = x.float()
        return torch.stack([x, *(apply_transform(n, x, self.config) for n in self.config.names)])


def _mlp(width: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))


class SignalTransforms(Method):
    """Transformation recognition on a shared transformer encoder.

    Shapes:
        - batch: ``(B, 1 + K, C, L)`` (see :class:`TransformedCopies`)
        - :meth:`logits`: ``binary``: ``(B, 1 + K, K)`` (every head on every copy); ``softmax``: ``(B, 1 + K, 1 + K)``
        - :meth:`embed`: ``(B, C, L) -> (B, width)``
    """

    def __init__(self, config: SignalTransformsConfig, info: SignalInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        bb = SignalTransformerConfig(**{**vars(config.backbone), "in_channels": info.channels, "length": info.length})
        self.backbone = SignalTransformer(bb)
        k = len(config.transforms.names)
        width = self.backbone.embed_dim
        if config.objective == "binary":
            self.heads = nn.ModuleList([_mlp(width, config.head_hidden, 1) for _ in range(k)])
        else:
            self.heads = nn.ModuleList([_mlp(width, config.head_hidden, 1 + k)])

    def pretext(self) -> TransformedCopies:
        """The original and each transformation of it, per sample."""
        return TransformedCopies(self.config.transforms)

    def logits(self, batch: torch.Tensor) -> torch.Tensor:
        """Every head's logits on every copy."""
        k = len(self.config.transforms.names)
        if batch.ndim != 4 or batch.shape[1] != 1 + k:
            raise ValueError(f"expected a batch (B, {1 + k}, C, L) of copies, got shape {tuple(batch.shape)}")
        b, n = batch.shape[:2]
        emb = self.backbone(batch.flatten(0, 1))  # (B * (1 + K), width)
        return torch.cat([h(emb) for h in self.heads], dim=1).reshape(b, n, -1)

    def forward(self, batch: torch.Tensor) -> MethodOutput:
        """The mean binary cross-entropy of the ``K`` tasks (``binary``) or the cross-entropy over the copies
        (``softmax``); logs the recognition accuracy."""
        logits = self.logits(batch)
        b, n = logits.shape[:2]
        k = n - 1
        if self.config.objective == "binary":
            # head j sees the original (target 0) and copy j + 1 (target 1)
            idx = torch.arange(k, device=logits.device)
            neg = logits[:, 0, :]  # (B, K): every head on the original
            pos = logits[:, idx + 1, idx]  # (B, K): head j on T_j(x)
            pair = torch.stack([neg, pos], dim=1)  # (B, 2, K)
            target = torch.stack([torch.zeros_like(neg), torch.ones_like(pos)], dim=1)
            per_task = F.binary_cross_entropy_with_logits(pair, target, reduction="none").mean(dim=(0, 1))
            loss = per_task.mean()
            acc = ((pair > 0).float() == target).float().mean()
            logs = {
                "acc": acc.detach(),
                **{f"bce_{name}": v.detach() for name, v in zip(self.config.transforms.names, per_task, strict=True)},
            }
        else:
            target = torch.arange(n, device=logits.device).repeat(b)
            flat = logits.reshape(b * n, n)
            loss = F.cross_entropy(flat, target)
            logs = {"acc": (flat.argmax(1) == target).float().mean().detach()}
        return MethodOutput(loss, logs)

    def backbone_spec(self) -> BackboneSpec:
        """The encoder's spec (``signal_transformer`` and its config)."""
        return BackboneSpec(
            name="signal_transformer",
            config=self.backbone.spec_config(),
            embed_dim=self.backbone.embed_dim,
            input=self.info.backbone_input(),
        )

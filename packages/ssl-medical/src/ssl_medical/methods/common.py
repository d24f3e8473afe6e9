"""What the two multi-task volume methods (``swin_pretext``, ``cswin_multitask``) share: Tang et al.'s three heads
on the encoder's coarsest map, their three losses, and the weighting that combines them.

The heads follow ``SSLHead`` of Tang et al. (2022; research-contributions ``SwinUNETR/Pretrain/models/ssl_head.py``)
with its ``upsample="deconv"`` reconstruction decoder: a chain of ``ConvTranspose3d(kernel 2, stride 2)`` halving
the channels at each step, without norms or activations, up to the input resolution. One change: the reference
feeds token 0 of the last stage to the rotation head and token 1 to the contrastive head, which needs at least two
tokens (a 64^3 input); at the 32^3 patches these CPU recipes afford, the last stage is one voxel, so both heads
read the spatial mean of the last stage instead.

Losses (``losses/loss.py`` of the reference): rotation cross entropy over the 4 classes, NT-Xent between the two
views' projections with temperature 0.5 (:func:`ssl_core.losses.nt_xent`; the reference's ``Contrast`` is the same
formula, with negatives from every rank when ``gather_distributed``), L1 between the reconstruction and the rotated
clean patch over all voxels. They are combined by :class:`ssl_core.losses.MultiTaskLoss`: ``"fixed"`` (the
reference's unweighted sum), ``"uncertainty"`` (learned log-variances; the CSwin UNet paper's "automatic weighted
loss") or ``"mgda"`` (min-norm weights from the task gradients on the encoder).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.errors import ConfigError
from ssl_core.losses import MultiTaskLoss, nt_xent
from ssl_core.losses.multitask import WEIGHTINGS
from ssl_core.method import MethodOutput
from ssl_medical.pretext.swin import NUM_ROTATIONS, SwinPretext

TASKS = ("rotation", "contrastive", "reconstruction")


@dataclass
class MultiTaskSSLConfig:
    """The settings of Tang et al.'s three pretext tasks (``--set method.<name>=<value>``).

    Args:
        weighting: how the three losses combine: ``"fixed"`` (sum), ``"uncertainty"`` or ``"mgda"``.
        temperature: NT-Xent temperature (Tang et al.: 0.5).
        proj_dim: contrastive projection size (Tang et al.: 512).
        max_drop: largest share of voxels inpainted by one set of boxes (Tang et al.: 0.3).
        max_block: largest inpainting box side, as a share of the patch side (Tang et al.: 0.25).
        cross_sample: also paste boxes from another sample of the batch (Tang et al.: yes).
        gather_distributed: contrastive negatives from every rank under DDP.
    """

    weighting: str = "fixed"
    temperature: float = 0.5
    proj_dim: int = 512
    max_drop: float = 0.3
    max_block: float = 0.25
    cross_sample: bool = True
    gather_distributed: bool = True

    def check(self) -> None:
        """Raise :class:`~ssl_core.errors.ConfigError` for values that cannot work."""
        if self.weighting not in WEIGHTINGS:
            raise ConfigError(f"method.weighting must be one of {', '.join(WEIGHTINGS)}, got {self.weighting!r}")
        if not self.temperature > 0:
            raise ConfigError(f"method.temperature must be positive, got {self.temperature}")
        if self.proj_dim < 1:
            raise ConfigError(f"method.proj_dim must be >= 1, got {self.proj_dim}")

    def pretext(self) -> SwinPretext:
        """The views of Tang et al. with these inpainting settings."""
        return SwinPretext(self.max_drop, self.max_block, cross_sample=self.cross_sample)


def deconv_decoder(dim: int, out_channels: int, levels: int) -> nn.Sequential:
    """Tang et al.'s ``"deconv"`` reconstruction decoder: ``levels`` transposed convolutions (kernel 2, stride 2),
    channels ``dim -> dim/2 -> dim/4 -> ... -> out_channels`` (at least 4 in between), no norms or activations.

    Shapes:
        - input: ``(B, dim, d, h, w)``; output: ``(B, out_channels, 2^levels d, 2^levels h, 2^levels w)``
    """
    if levels < 1:
        raise ConfigError(f"the reconstruction decoder needs at least one upsampling level, got {levels}")
    chans = [dim] + [max(4, dim // 2**i) for i in range(1, levels)] + [out_channels]
    return nn.Sequential(
        *[nn.ConvTranspose3d(a, b, kernel_size=2, stride=2) for a, b in zip(chans, chans[1:], strict=False)]
    )


class SSLHeads(nn.Module):
    """Rotation classifier, contrastive projection and reconstruction decoder on the encoder's coarsest map.

    Args:
        dim: channels of the coarsest map.
        out_channels: image channels to reconstruct.
        levels: upsampling steps from the coarsest map to the input resolution (input side / map side = 2^levels).
        proj_dim: contrastive projection size.

    Shapes:
        - input: ``(B, dim, d, h, w)``
        - output: rotation logits ``(B, 4)``, projection ``(B, proj_dim)``, reconstruction
          ``(B, out_channels, 2^levels d, 2^levels h, 2^levels w)``
    """

    def __init__(self, dim: int, out_channels: int, levels: int, proj_dim: int = 512) -> None:
        super().__init__()
        self.rotation = nn.Linear(dim, NUM_ROTATIONS)
        self.contrastive = nn.Linear(dim, proj_dim)
        self.reconstruction = deconv_decoder(dim, out_channels, levels)

    def rotation_and_projection(self, fmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The rotation logits and the contrastive projection of the spatially averaged map."""
        pooled = fmap.mean(dim=(2, 3, 4))
        return self.rotation(pooled), self.contrastive(pooled)

    def forward(self, fmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Apply the three heads (see the class docstring for shapes)."""
        return (*self.rotation_and_projection(fmap), self.reconstruction(fmap))


def flatten_views(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The two views of every sample as one batch, first views first: inputs, targets and rotation labels.

    Shapes:
        - batch: ``views`` / ``targets`` ``(B, 2, C, D, H, W)``, ``rotations`` ``(B, 2)``
        - output: ``(2B, C, D, H, W)``, ``(2B, C, D, H, W)``, ``(2B,)``
    """
    views, targets, rots = batch["views"], batch["targets"], batch["rotations"]
    if views.ndim != 6 or views.shape[1] != 2:
        raise ValueError(f"expected views (B, 2, C, D, H, W) from the Swin pretext, got {tuple(views.shape)}")
    return (
        torch.cat([views[:, 0], views[:, 1]]),
        torch.cat([targets[:, 0], targets[:, 1]]),
        torch.cat([rots[:, 0], rots[:, 1]]),
    )


def task_losses(
    rot_logits: torch.Tensor,
    projections: torch.Tensor,
    reconstruction: torch.Tensor,
    rotations: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 0.5,
    gather_distributed: bool = False,
) -> dict[str, torch.Tensor]:
    """Tang et al.'s three losses on the outputs for ``2B`` views (first views first, as :func:`flatten_views`).

    Shapes:
        - rot_logits: ``(2B, 4)``; projections: ``(2B, P)``; reconstruction, targets: ``(2B, C, D, H, W)``;
          rotations: ``(2B,)``
        - output: ``{"rotation", "contrastive", "reconstruction"}`` scalars
    """
    if reconstruction.shape != targets.shape:
        raise ConfigError(
            f"the reconstruction {tuple(reconstruction.shape)} does not match the patch {tuple(targets.shape)}: "
            "the patch side must be 2^levels times the encoder's coarsest map side"
        )
    n = projections.shape[0] // 2
    return {
        "rotation": F.cross_entropy(rot_logits, rotations),
        "contrastive": nt_xent(projections[:n], projections[n:], temperature, gather_distributed),
        "reconstruction": F.l1_loss(reconstruction, targets),
    }


class MultiTaskObjective(nn.Module):
    """Heads + losses + weighting: the forward pass both multi-task methods share.

    Args:
        config: the task settings.
        dim: channels of the encoder's coarsest map.
        out_channels: image channels.
        levels: upsampling steps from the coarsest map to the patch.
    """

    def __init__(self, config: MultiTaskSSLConfig, dim: int, out_channels: int, levels: int) -> None:
        super().__init__()
        config.check()
        self.config = config
        self.heads = SSLHeads(dim, out_channels, levels, config.proj_dim)
        self.weighting = MultiTaskLoss(TASKS, config.weighting)

    def forward(
        self,
        batch: dict[str, torch.Tensor],
        coarsest: Callable[[torch.Tensor], torch.Tensor],
        shared_params: Iterable[nn.Parameter],
    ) -> MethodOutput:
        """The weighted loss of one batch of the Swin pretext.

        With ``"mgda"`` the encoder receives the min-norm combination ``sum_k alpha_k grad L_k`` while each head
        receives the gradient of its own loss, as in MGDA's task-specific update (Sener & Koltun, 2018): a head
        whose task gets ``alpha_k = 0`` still learns. The returned loss is then ``sum_k L_k`` and its gradient on
        the encoder is scaled per task by ``alpha_k``.

        Args:
            batch: collated items of :class:`~ssl_medical.pretext.swin.SwinPretext`.
            coarsest: the encoder: ``(2B, C, D, H, W) -> (2B, dim, d, h, w)``, its coarsest map.
            shared_params: the encoder's parameters (MGDA's task gradients are taken on them).
        """
        x, targets, rots = flatten_views(batch)
        c = self.config
        fmap = coarsest(x)
        mgda = c.weighting == "mgda"
        scales = torch.ones(len(TASKS), dtype=fmap.dtype, device=fmap.device)
        if mgda:  # one gradient-scaled copy of the map per task, scales set once the weights are known
            maps = [_ScaleGrad.apply(fmap, scales[i]) for i in range(len(TASKS))]
            rot_logits = self.heads.rotation_and_projection(maps[0])[0]
            proj = self.heads.rotation_and_projection(maps[1])[1]
            recon = self.heads.reconstruction(maps[2])
        else:
            rot_logits, proj, recon = self.heads(fmap)
        losses = task_losses(rot_logits, proj, recon, rots, targets, c.temperature, c.gather_distributed)
        total, weights = self.weighting(losses, shared_params if mgda else None)
        if mgda:
            with torch.no_grad():
                scales.copy_(torch.tensor([weights[t] for t in TASKS], dtype=scales.dtype))
            total = sum(losses.values())
        logs = {f"loss_{k}": v.detach() for k, v in losses.items()}
        logs.update({f"w_{k}": v for k, v in weights.items()})
        logs["rot_acc"] = (rot_logits.argmax(1) == rots).float().mean().detach()
        return MethodOutput(total, logs)


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; the backward multiplies the gradient by ``scale``, read when the backward runs (so it may
    be set after the forward)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ctx.scale = scale  # not save_for_backward: the scale is filled in place after this forward
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: D102
        return grad * ctx.scale, None

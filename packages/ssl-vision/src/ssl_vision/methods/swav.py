"""SwAV (Caron et al., 2020, "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments").

Algorithm 1 of the paper, with multi-crop: every crop is embedded (backbone, 2-layer projector, L2
normalisation) and scored against K learnable prototypes (kept on the unit sphere); the codes of each
global crop are the Sinkhorn-Knopp equipartition of its scores -- computed together with the scores of
embeddings queued from earlier batches when the batch is small -- and every other crop predicts them
(swapped prediction, a softmax at temperature tau). The prototypes are frozen during the first steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.losses import swav_loss
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_core.teacher import FeatureQueue
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.common import backbone_spec, build_backbone
from ssl_vision.models.heads import projection_mlp
from ssl_vision.models.resnet import ResNetConfig
from ssl_vision.models.vit import ViTConfig
from ssl_vision.transforms.views import MultiCropConfig, MultiView, ViewConfig, multicrop_transform


def swav_crops() -> MultiCropConfig:
    """SwAV's multi-crop: 2 global crops of scale 0.14-1, 6 local crops of scale 0.05-0.14 (12 of 28 px)."""
    return MultiCropConfig(
        global_views=[ViewConfig(crop_scale=[0.14, 1.0], blur_prob=0.5) for _ in range(2)],
        local_view=ViewConfig(size=12, crop_scale=[0.05, 0.14], blur_prob=0.5),
        n_local=6,
    )


@dataclass
class SwAVConfig:
    """SwAV settings (``--set method.<name>=<value>``).

    Args:
        backbone: the ResNet (default: ``ResNetConfig.slim()``, 512-d).
        vit: a ViT instead of the ResNet when set.
        proj_hidden_dim: hidden width of the projector (2048 in the paper).
        proj_dim: embedding size (128).
        n_prototypes: number of prototypes K (3000 on ImageNet; 512 here for 10 classes).
        temperature: :math:`\\tau` of the swapped prediction (0.1).
        epsilon: Sinkhorn entropy weight (0.05).
        sinkhorn_iters: Sinkhorn-Knopp iterations (3).
        queue_size: embeddings queued per global crop (3840 at batch 256 in the paper; 0 disables the queue).
        queue_start_step: step from which embeddings are queued; the queue joins the codes once full
            (the paper starts it at epoch 15 of 800; here at step 60, a quarter of an epoch of Fashion-MNIST
            at batch 256, so that even the one-epoch default run trains most of its steps with it).
        freeze_prototypes_steps: steps during which the prototypes get no gradient (313 in the paper).
        crops: the multi-crop views.
        gather_distributed: Sinkhorn over every process's batch under torchrun.
    """

    backbone: ResNetConfig = field(default_factory=ResNetConfig.slim)
    vit: ViTConfig | None = None
    proj_hidden_dim: int = 512
    proj_dim: int = 128
    n_prototypes: int = 512
    temperature: float = 0.1
    epsilon: float = 0.05
    sinkhorn_iters: int = 3
    queue_size: int = 1024
    queue_start_step: int = 60
    freeze_prototypes_steps: int = 50
    crops: MultiCropConfig = field(default_factory=swav_crops)
    gather_distributed: bool = True


class SwAV(Method):
    """SwAV: swapped prediction of Sinkhorn codes of prototype scores, over multi-crop views.

    Shapes:
        - batch: ``len(crops.global_views)`` tensors ``(B, C, S, S)``, then ``crops.n_local`` tensors
          ``(B, C, s, s)``
        - :meth:`embed`: ``(B, C, S, S) -> (B, embed_dim)``
    """

    ddp_find_unused_parameters = True  # the prototypes get no gradient while frozen

    def __init__(self, config: SwAVConfig, info: ImageInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        c = config
        self.n_global = len(c.crops.global_views)
        self.backbone = build_backbone(c.backbone, info, c.vit)
        self.projector = projection_mlp(self.backbone.embed_dim, c.proj_hidden_dim, c.proj_dim)
        self.prototypes = nn.Linear(c.proj_dim, c.n_prototypes, bias=False)
        self.queues = nn.ModuleList(
            FeatureQueue(c.queue_size, c.proj_dim) for _ in range(self.n_global if c.queue_size else 0)
        )

    def pretext(self) -> MultiView:
        return multicrop_transform(self.config.crops, self.info)

    def embed_crops(self, views: list[torch.Tensor]) -> torch.Tensor:
        """Unit-norm embeddings of same-sized crops, in one pass: ``V`` tensors ``(B, ...) -> (V * B, proj_dim)``."""
        return F.normalize(self.projector(self.backbone(torch.cat(views))), dim=1)

    def forward(self, batch: tuple[torch.Tensor, ...]) -> MethodOutput:
        c, step = self.config, self.current_step.index
        with torch.no_grad():  # prototypes back on the unit sphere before they are used
            self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))
        w = self.prototypes.weight
        w = w.detach() if step < c.freeze_prototypes_steps else w
        z_global = self.embed_crops(list(batch[: self.n_global]))  # (n_global * B, proj_dim)
        high = F.linear(z_global, w).chunk(self.n_global)
        local = list(batch[self.n_global :])
        low = F.linear(self.embed_crops(local), w).chunk(len(local)) if local else ()
        queue_scores = None
        if self.queues and all(q.is_full for q in self.queues):
            queue_scores = [q.features.to(w.dtype) @ w.detach().T for q in self.queues]  # (Q, K) per global crop
        loss = swav_loss(high, low, queue_scores, c.temperature, c.epsilon, c.sinkhorn_iters, c.gather_distributed)
        if self.queues and step >= c.queue_start_step:
            for q, z in zip(self.queues, z_global.detach().chunk(self.n_global), strict=True):
                q.enqueue(z, gather_distributed=c.gather_distributed)
        return MethodOutput(loss, {"queue": float(queue_scores is not None)})

    def backbone_spec(self) -> BackboneSpec:
        return backbone_spec(self.backbone, self.info)

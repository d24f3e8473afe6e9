"""NNCLR (Dwibedi et al., 2021, "With a Little Help from My Friends: Nearest-Neighbor Contrastive Learning").

Algorithm of the paper (eq. 2 and Fig. 2): each view's projection z is replaced by its nearest neighbour
NN(z) in a support set (a queue of projections of earlier batches); NN(z1) is the positive of the other
view's prediction p2, the predictions of the other images of the batch are the negatives:

    L = InfoNCE(NN(z1), p2; tau) / 2 + InfoNCE(NN(z2), p1; tau) / 2,

and the support set is refreshed with z1 after each step. NN(z) comes from the queue, so the gradient
flows through the predictions only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ssl_core.losses import info_nce
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_core.teacher import FeatureQueue
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.common import backbone_spec, build_backbone
from ssl_vision.models.heads import projection_mlp
from ssl_vision.models.resnet import ResNetConfig
from ssl_vision.models.vit import ViTConfig
from ssl_vision.transforms.views import MultiView, View, ViewConfig


@dataclass
class NNCLRConfig:
    """NNCLR settings (``--set method.<name>=<value>``).

    Args:
        backbone: the ResNet (default: ``ResNetConfig.slim()``, 512-d).
        vit: a ViT instead of the ResNet when set.
        proj_hidden_dim: hidden width of projector and predictor (2048 / 4096 in the paper).
        proj_dim: output size of both (256).
        temperature: :math:`\\tau` (0.1).
        support_size: projections in the support set (98,304 in the paper; 8,192 here, about 14% of
            Fashion-MNIST's training set as the paper's is of ImageNet's).
        views: the augmentations of both views (SimCLR's).
        gather_distributed: negatives and support-set updates from every process under torchrun.
    """

    backbone: ResNetConfig = field(default_factory=ResNetConfig.slim)
    vit: ViTConfig | None = None
    proj_hidden_dim: int = 1024
    proj_dim: int = 256
    temperature: float = 0.1
    support_size: int = 8192
    views: ViewConfig = field(default_factory=ViewConfig)
    gather_distributed: bool = True


def nearest_neighbour(z: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """The support-set row most cosine-similar to each row of ``z``.

    Shapes:
        - z: ``(B, D)``, support: ``(K, D)``; output: ``(B, D)``
    """
    sim = F.normalize(z, dim=1) @ F.normalize(support, dim=1).T  # (B, K)
    return support[sim.argmax(dim=1)]


class NNCLR(Method):
    """NNCLR: nearest neighbours from a support set as positives, contrasted with the other view's predictions.

    Shapes:
        - batch: ``(x1, x2)``, two ``(B, C, H, W)`` views
        - :meth:`embed`: ``(B, C, H, W) -> (B, embed_dim)``
    """

    def __init__(self, config: NNCLRConfig, info: ImageInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        c = config
        self.backbone = build_backbone(c.backbone, info, c.vit)
        self.projector = projection_mlp(self.backbone.embed_dim, c.proj_hidden_dim, c.proj_dim, 3, last_bn=True)
        self.predictor = projection_mlp(c.proj_dim, c.proj_hidden_dim, c.proj_dim, 2)
        self.support = FeatureQueue(c.support_size, c.proj_dim)

    def pretext(self) -> MultiView:
        view = View(self.config.views, self.info)
        return MultiView([view, view])

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> MethodOutput:
        c = self.config
        z = self.projector(self.backbone(torch.cat(batch[:2])))  # (2B, proj_dim)
        p1, p2 = self.predictor(z).chunk(2)
        z1, z2 = z.detach().chunk(2)
        if len(self.support):
            support = self.support.features.to(z.dtype)
            nn1, nn2 = nearest_neighbour(z1, support), nearest_neighbour(z2, support)
        else:  # the very first step: the support set is still empty, each projection is its own neighbour
            nn1, nn2 = z1, z2
        loss = 0.5 * info_nce(nn1, p2, temperature=c.temperature, gather_distributed=c.gather_distributed)
        loss = loss + 0.5 * info_nce(nn2, p1, temperature=c.temperature, gather_distributed=c.gather_distributed)
        self.support.enqueue(z1, gather_distributed=c.gather_distributed)
        return MethodOutput(loss, {})

    def backbone_spec(self) -> BackboneSpec:
        return backbone_spec(self.backbone, self.info)

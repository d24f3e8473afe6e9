"""SimCLR (Chen et al., 2020, "A Simple Framework for Contrastive Learning of Visual Representations").

Algorithm 1 of the paper: draw two augmentations of every image, encode both with the backbone f and
the projection head g, and minimise NT-Xent over the 2N projections, each view's positive being the
other view of its image and its negatives the remaining 2N - 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ssl_core.losses import nt_xent
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.common import build_backbone, resnet_spec
from ssl_vision.models.heads import projection_mlp
from ssl_vision.models.resnet import ResNetConfig
from ssl_vision.transforms.views import MultiView, ViewConfig, view_transform


@dataclass
class SimCLRConfig:
    """SimCLR settings (``--set method.<name>=<value>``).

    Args:
        backbone: the ResNet. The default, 4 stages of one block with widths 16-32-64-128 (0.31 M
            parameters, 128-d embedding), trains two 28x28 views at about 600 images/s on 2 CPU cores, so
            the default budget buys two epochs of Fashion-MNIST; ResNet-18 (``layers=[2,2,2,2]``,
            ``width=64``) trains at about 60 images/s there.
        proj_hidden_dim: width of the projection head's hidden layer (2048 in the paper).
        proj_dim: output size of the projection head (128 in the paper).
        proj_layers: linear layers of the projection head (2 in SimCLR v1, 3 in v2).
        temperature: NT-Xent temperature (the paper: 0.5 for CIFAR-10, 0.1 for ImageNet). 0.1 gave the best
            kNN accuracy of 0.1 / 0.2 / 0.5 in two-epoch Fashion-MNIST runs here.
        views: the augmentations, the same for both views.
        gather_distributed: take negatives from every process under torchrun.
    """

    backbone: ResNetConfig = field(default_factory=lambda: ResNetConfig(width=16))
    proj_hidden_dim: int = 512
    proj_dim: int = 128
    proj_layers: int = 2
    temperature: float = 0.1
    views: ViewConfig = field(default_factory=ViewConfig)
    gather_distributed: bool = True


class SimCLR(Method):
    """SimCLR: backbone f, projection head g, NT-Xent between the projections of two views.

    Shapes:
        - batch: ``(x1, x2)``, two ``(B, C, H, W)`` views of the same images
        - :meth:`embed`: ``(B, C, H, W) -> (B, embed_dim)`` (the backbone's pooled features)
    """

    def __init__(self, config: SimCLRConfig, info: ImageInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        self.backbone = build_backbone(config.backbone, info)
        self.projector = projection_mlp(
            self.backbone.embed_dim, config.proj_hidden_dim, config.proj_dim, config.proj_layers
        )

    def pretext(self) -> MultiView:
        view = view_transform(self.config.views, self.info)
        return MultiView([view, view])

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> MethodOutput:
        x1, x2 = batch
        z = self.projector(self.backbone(torch.cat([x1, x2])))  # one pass over both views: (2B, proj_dim)
        z1, z2 = z.chunk(2)
        loss = nt_xent(z1, z2, self.config.temperature, gather_distributed=self.config.gather_distributed)
        return MethodOutput(loss, {})

    def backbone_spec(self) -> BackboneSpec:
        return resnet_spec(self.backbone, self.info)

"""SimCLR (Chen et al., 2020, "A Simple Framework for Contrastive Learning of Visual Representations").

Algorithm 1 of the paper: draw two augmentations of every image, encode both with the backbone f and
the projection head g, and minimise NT-Xent over the 2N projections, each view's positive being the
other view of its image and its negatives the remaining 2N - 2.

``loss=dcl`` / ``loss=dclw`` swap in the decoupled contrastive objectives of Yeh et al. (2022), which drop
the positive from the denominator (DCLW also up-weights hard positives); the rest is SimCLR's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ssl_core.errors import ConfigError
from ssl_core.losses import dcl, dclw, nt_xent
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.common import backbone_spec, build_backbone
from ssl_vision.models.heads import projection_mlp
from ssl_vision.models.resnet import ResNetConfig
from ssl_vision.models.vit import ViTConfig
from ssl_vision.transforms.views import MultiView, View, ViewConfig

LOSSES = ("nt_xent", "dcl", "dclw")


@dataclass
class SimCLRConfig:
    """SimCLR settings (``--set method.<name>=<value>``).

    Args:
        backbone: the ResNet. The default, :meth:`~ssl_vision.models.resnet.ResNetConfig.slim` (0.31 M
            parameters, a 512-number embedding), trains two 28x28 views at about 1,500-3,400 images/s on
            2 CPU cores (two AMD EPYC machines), so the default budget buys 5.5-7 epochs of Fashion-MNIST;
            ResNet-18 (``layers=[2,2,2,2]``, ``width=64``) trains at about 60 images/s there.
        vit: a ViT instead of the ResNet when set (``method.vit={}`` for ViT-tiny).
        proj_hidden_dim: width of the projection head's hidden layer (2048 in the paper).
        proj_dim: output size of the projection head (128 in the paper).
        proj_layers: linear layers of the projection head (2 in SimCLR v1, 3 in v2).
        temperature: NT-Xent temperature (the paper: 0.5 for CIFAR-10, 0.1 for ImageNet). 0.1 gave the best
            kNN accuracy of 0.1 / 0.2 / 0.5 in two-epoch Fashion-MNIST runs here, and of 0.07 / 0.1 / 0.2 in
            five-epoch runs.
        loss: ``nt_xent`` (SimCLR), ``dcl`` or ``dclw`` (decoupled contrastive learning, Yeh et al., 2022).
        dclw_sigma: the von Mises-Fisher weighting's sigma of ``dclw`` (0.5 in the paper).
        views: the augmentations, the same for both views.
        gather_distributed: take negatives from every process under torchrun.
    """

    backbone: ResNetConfig = field(default_factory=ResNetConfig.slim)
    vit: ViTConfig | None = None
    proj_hidden_dim: int = 512
    proj_dim: int = 128
    proj_layers: int = 2
    temperature: float = 0.1
    loss: str = "nt_xent"
    dclw_sigma: float = 0.5
    views: ViewConfig = field(default_factory=ViewConfig)
    gather_distributed: bool = True

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"method.loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")


class SimCLR(Method):
    """SimCLR: backbone f, projection head g, NT-Xent (or DCL / DCLW) between the projections of two views.

    Shapes:
        - batch: ``(x1, x2)``, two ``(B, C, H, W)`` views of the same images
        - :meth:`embed`: ``(B, C, H, W) -> (B, embed_dim)`` (the backbone's pooled features)
    """

    def __init__(self, config: SimCLRConfig, info: ImageInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        self.backbone = build_backbone(config.backbone, info, config.vit)
        self.projector = projection_mlp(
            self.backbone.embed_dim, config.proj_hidden_dim, config.proj_dim, config.proj_layers
        )

    def pretext(self) -> MultiView:
        view = View(self.config.views, self.info)
        return MultiView([view, view])

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> MethodOutput:
        x1, x2 = batch
        z = self.projector(self.backbone(torch.cat([x1, x2])))  # one pass over both views: (2B, proj_dim)
        z1, z2 = z.chunk(2)
        c = self.config
        if c.loss == "dcl":
            loss = dcl(z1, z2, c.temperature, gather_distributed=c.gather_distributed)
        elif c.loss == "dclw":
            loss = dclw(z1, z2, c.temperature, c.dclw_sigma, gather_distributed=c.gather_distributed)
        else:
            loss = nt_xent(z1, z2, c.temperature, gather_distributed=c.gather_distributed)
        return MethodOutput(loss, {})

    def backbone_spec(self) -> BackboneSpec:
        return backbone_spec(self.backbone, self.info)

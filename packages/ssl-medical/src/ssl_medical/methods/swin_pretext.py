"""Swin UNETR's self-supervised pretraining (Tang et al., 2022, "Self-Supervised Pre-Training of Swin Transformers
for 3D Medical Image Analysis").

Two rotated, inpainted views of each patch (:class:`~ssl_medical.pretext.swin.SwinPretext`) go through the Swin
transformer encoder (``SwinUNETR.swinViT``, normalised outputs as in the reference); on its last stage three heads
(:mod:`ssl_medical.methods.common`) predict the rotation (cross entropy), project for NT-Xent between the two views
(temperature 0.5) and reconstruct the rotated clean patch (L1, ``"deconv"`` decoder); the losses are summed
(``weighting="fixed"``, the reference) or weighted by learned uncertainty or MGDA.

As in the reference, only the encoder and the heads are trained: the SwinUNETR decoder is frozen here (its weights
stay at their initialisation and are trained by fine-tuning), and the exported backbone is the whole
``monai.networks.nets.SwinUNETR`` whose ``swinViT`` was pretrained, which MONAI users load with ``strict=True``.

CPU setting (differences from the paper, which uses feature_size 48, window 7 and 96^3 patches on GPUs): 32^3
patches (the encoder's five stages give 16^3 ... 1^3; the full network cannot train on 32^3, but the encoder can),
``feature_size=12`` and ``window_size=4`` (a window of 7 pads the 16^3 first stage to 21^3: embedding 64 patches of
32^3 took 52 s against 6.2 s with a window of 4, on the loaded 2-core machine). The patch side must be a multiple of
32. The trainable part (encoder + heads) has 0.82 M parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from ssl_core.errors import ConfigError
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_medical.info import VolumeInfo
from ssl_medical.methods.common import MultiTaskObjective, MultiTaskSSLConfig
from ssl_medical.models.monai_nets import MonaiBackbone, swinunetr_kwargs
from ssl_medical.pretext.swin import SwinPretext

REDUCTION = 32  # the Swin encoder's last stage is 1/32 of the input (patch embedding 2, four mergings)


@dataclass
class SwinPretextConfig(MultiTaskSSLConfig):
    """Swin UNETR pretraining settings (``--set method.<name>=<value>``).

    Args:
        feature_size: SwinUNETR ``feature_size`` (multiple of 12; the paper: 48).
        depths: Swin blocks per stage (the paper: 2, 2, 2, 2).
        num_heads: heads per stage (the paper: 3, 6, 12, 24).
        window_size: attention window (the paper: 7; 4 here, see the module docstring).
        weighting: ``"fixed"`` (the reference's sum), ``"uncertainty"`` or ``"mgda"``.
        (the other fields: see :class:`~ssl_medical.methods.common.MultiTaskSSLConfig`)
    """

    feature_size: int = 12
    depths: tuple[int, ...] = (2, 2, 2, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    window_size: int = 4

    def __post_init__(self) -> None:
        self.depths, self.num_heads = tuple(self.depths), tuple(self.num_heads)
        if len(self.depths) != 4 or len(self.num_heads) != 4:
            raise ConfigError(f"SwinUNETR has 4 stages: depths and num_heads need 4 entries, got {self.depths}")
        if self.window_size < 1:
            raise ConfigError(f"window_size must be >= 1, got {self.window_size}")
        self.check()


class SwinUNETRPretext(Method):
    """Rotation + contrastive + inpainting reconstruction on the SwinUNETR encoder.

    Shapes:
        - batch: collated :class:`~ssl_medical.pretext.swin.SwinPretext` items (``views`` ``(B, 2, C, D, H, W)``)
        - :meth:`embed`: ``(B, C, D, H, W) -> (B, 31 * feature_size)`` (the backbone's pooled encoder maps)
    """

    def __init__(self, config: SwinPretextConfig, info: VolumeInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        if any(s % REDUCTION for s in info.patch_size):
            raise ConfigError(
                f"data.patch_size {tuple(info.patch_size)} must be a multiple of 32 on every side for the Swin "
                "encoder (1/32 at its last stage): use 32 or 64"
            )
        kwargs = swinunetr_kwargs(
            feature_size=config.feature_size,
            depths=config.depths,
            num_heads=config.num_heads,
            in_channels=info.channels,
            window_size=config.window_size,
        )
        self.backbone = MonaiBackbone("SwinUNETR", kwargs)
        self.backbone.net.requires_grad_(False)
        self.backbone.net.swinViT.requires_grad_(True)
        self.objective = MultiTaskObjective(config, 16 * config.feature_size, info.channels, 5)

    def pretext(self) -> SwinPretext:
        """Two rotated, inpainted views per patch (:class:`~ssl_medical.pretext.swin.SwinPretext`)."""
        return self.config.pretext()

    def forward(self, batch: dict) -> MethodOutput:
        """The weighted sum of the three task losses of one batch."""
        return self.objective(
            batch, lambda x: self.backbone.features(x)[-1], list(self.backbone.net.swinViT.parameters())
        )

    def backbone_spec(self) -> BackboneSpec:
        """The whole SwinUNETR (builder ``"monai"``: :func:`~ssl_medical.models.monai_nets.build_monai_backbone`)."""
        return BackboneSpec("monai", self.backbone.config(), self.backbone.embed_dim, input=self.info.backbone_input())

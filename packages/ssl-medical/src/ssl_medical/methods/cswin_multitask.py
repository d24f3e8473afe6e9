"""Multi-task self-supervised pretraining of a CSwin UNet encoder (Li et al., 2023, "Cross-Shaped Windows
Transformer with Self-supervised Pretraining for Clinically Significant Prostate Cancer Detection in Bi-parametric
MRI").

The pretext tasks are those of Swin UNETR's pretraining (Tang et al., 2022), which the CSwin UNet paper builds on:
rotation prediction, contrastive coding of two views and reconstruction of inpainted boxes, on two rotated and
inpainted views of each patch (:class:`~ssl_medical.pretext.swin.SwinPretext`), with the heads and losses of
:mod:`ssl_medical.methods.common` on the coarsest stage of the CSwin encoder
(:class:`~ssl_medical.models.cswin.CSwinUNet`). The paper combines the task losses with an automatic weighted loss
(learned per-task uncertainty, Kendall et al., 2018), so ``weighting="uncertainty"`` is the default here;
``"fixed"`` (Tang et al.'s sum) and ``"mgda"`` are selectable, as on ``swin_pretext``.

Only the encoder and the heads are trained (the pretraining of the paper trains the CSwin transformer); the UNet
decoder's parameters are frozen here and trained when :meth:`~ssl_medical.models.cswin.CSwinUNet.segmenter` builds
a network for fine-tuning. The exported backbone is the whole CSwin UNet.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ssl_core.errors import ConfigError
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_medical.info import VolumeInfo
from ssl_medical.methods.common import MultiTaskObjective, MultiTaskSSLConfig
from ssl_medical.models.cswin import CSwinUNet, CSwinUNetConfig
from ssl_medical.pretext.swin import SwinPretext


@dataclass
class CSwinMultiTaskConfig(MultiTaskSSLConfig):
    """CSwin UNet multi-task pretraining settings (``--set method.<name>=<value>``).

    Args:
        backbone: the CSwin UNet's shape (:class:`~ssl_medical.models.cswin.CSwinUNetConfig`; its
            ``in_channels`` follows the data).
        weighting: ``"uncertainty"`` (the paper's automatic weighted loss), ``"fixed"`` or ``"mgda"``.
        (the other fields: see :class:`~ssl_medical.methods.common.MultiTaskSSLConfig`)
    """

    backbone: CSwinUNetConfig = field(default_factory=CSwinUNetConfig)
    weighting: str = "uncertainty"

    def __post_init__(self) -> None:
        if isinstance(self.backbone, dict):
            self.backbone = CSwinUNetConfig(**self.backbone)
        self.check()


class CSwinMultiTask(Method):
    """Rotation + contrastive + inpainting reconstruction on a CSwin UNet encoder.

    Shapes:
        - batch: collated :class:`~ssl_medical.pretext.swin.SwinPretext` items (``views`` ``(B, 2, C, D, H, W)``)
        - :meth:`embed`: ``(B, C, D, H, W) -> (B, embed_dim)`` (stage maps averaged, concatenated)
    """

    def __init__(self, config: CSwinMultiTaskConfig, info: VolumeInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        bcfg = replace(config.backbone, in_channels=info.channels)
        r = bcfg.reduction
        if r & (r - 1):
            raise ConfigError(
                f"the reconstruction head upsamples by powers of 2: patch_size * 2^(stages - 1) = {r} must be one; "
                "use a patch_size of 1, 2 or 4"
            )
        if any(s % r for s in info.patch_size):
            raise ConfigError(
                f"data.patch_size {tuple(info.patch_size)} must be a multiple of {r} on every side for this CSwin UNet "
                "(patch_size * 2^(stages - 1)); change data.patch_size or method.backbone.depths"
            )
        self.backbone = CSwinUNet(bcfg)
        for m in self.backbone.decoder_modules():
            m.requires_grad_(False)
        self.objective = MultiTaskObjective(config, bcfg.dims[-1], info.channels, r.bit_length() - 1)

    def pretext(self) -> SwinPretext:
        """Two rotated, inpainted views per patch (:class:`~ssl_medical.pretext.swin.SwinPretext`)."""
        return self.config.pretext()

    def forward(self, batch: dict) -> MethodOutput:
        """The weighted sum of the three task losses of one batch."""
        return self.objective(batch, lambda x: self.backbone.features(x)[-1], self.backbone.encoder_parameters())

    def backbone_spec(self) -> BackboneSpec:
        """The whole CSwin UNet (``cswin_unet`` builder: :func:`~ssl_medical.models.cswin.build_cswin_unet`)."""
        return BackboneSpec(
            "cswin_unet", self.backbone.config(), self.backbone.embed_dim, input=self.info.backbone_input()
        )

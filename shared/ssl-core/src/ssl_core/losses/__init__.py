"""Self-supervised objectives, each as a function and a thin ``nn.Module``."""

from ssl_core.losses.barlow_twins import BarlowTwinsLoss, barlow_twins
from ssl_core.losses.contrastive import DCLLoss, DCLWLoss, InfoNCELoss, NTXentLoss, dcl, dclw, info_nce, nt_xent
from ssl_core.losses.dino import DINOLoss, IBOTPatchLoss, dino_loss, ibot_patch_loss
from ssl_core.losses.koleo import KoLeoLoss, koleo
from ssl_core.losses.masked import (
    MaskedCrossEntropyLoss,
    MaskedL1Loss,
    MaskedMSELoss,
    SCELoss,
    masked_cross_entropy,
    masked_l1,
    masked_mse,
    sce,
)
from ssl_core.losses.multitask import MultiTaskLoss, min_norm_weights
from ssl_core.losses.negative_cosine import NegativeCosineLoss, negative_cosine
from ssl_core.losses.swav import SwAVLoss, sinkhorn_knopp, swav_loss
from ssl_core.losses.vicreg import VICRegLoss, vicreg

__all__ = [
    "BarlowTwinsLoss",
    "DCLLoss",
    "DCLWLoss",
    "DINOLoss",
    "IBOTPatchLoss",
    "InfoNCELoss",
    "KoLeoLoss",
    "MaskedCrossEntropyLoss",
    "MaskedL1Loss",
    "MaskedMSELoss",
    "MultiTaskLoss",
    "NTXentLoss",
    "NegativeCosineLoss",
    "SCELoss",
    "SwAVLoss",
    "VICRegLoss",
    "barlow_twins",
    "dcl",
    "dclw",
    "dino_loss",
    "ibot_patch_loss",
    "info_nce",
    "koleo",
    "masked_cross_entropy",
    "masked_l1",
    "masked_mse",
    "min_norm_weights",
    "negative_cosine",
    "nt_xent",
    "sce",
    "sinkhorn_knopp",
    "swav_loss",
    "vicreg",
]

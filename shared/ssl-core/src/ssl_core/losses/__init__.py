"""Self-supervised objectives, each as a function and a thin ``nn.Module``."""

from ssl_core.losses.barlow_twins import BarlowTwinsLoss, barlow_twins
from ssl_core.losses.contrastive import DCLLoss, DCLWLoss, InfoNCELoss, NTXentLoss, dcl, dclw, info_nce, nt_xent
from ssl_core.losses.cross_modal import CLIPLoss, MILNCELoss, clip_loss, mil_nce
from ssl_core.losses.dino import DINOLoss, IBOTPatchLoss, dino_loss, ibot_patch_loss
from ssl_core.losses.distillation import (
    SLASelfDistillationLoss,
    SoftTargetDistillationLoss,
    sla_aggregate,
    sla_joint_labels,
    sla_self_distillation,
    soft_target_distillation,
)
from ssl_core.losses.infomax import DGILoss, dgi_loss
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
from ssl_core.losses.region import RegionContrastiveLoss, region_contrastive, region_pool
from ssl_core.losses.supcon import SupConLoss, supcon
from ssl_core.losses.swav import SwAVLoss, sinkhorn_knopp, swav_loss
from ssl_core.losses.taco import TACOLoss, taco
from ssl_core.losses.triplet import TripletLoss, triplet
from ssl_core.losses.vicreg import VICRegLoss, vicreg

__all__ = [
    "BarlowTwinsLoss",
    "CLIPLoss",
    "DCLLoss",
    "DCLWLoss",
    "DGILoss",
    "DINOLoss",
    "IBOTPatchLoss",
    "InfoNCELoss",
    "KoLeoLoss",
    "MILNCELoss",
    "MaskedCrossEntropyLoss",
    "MaskedL1Loss",
    "MaskedMSELoss",
    "MultiTaskLoss",
    "NTXentLoss",
    "NegativeCosineLoss",
    "RegionContrastiveLoss",
    "SCELoss",
    "SLASelfDistillationLoss",
    "SoftTargetDistillationLoss",
    "SupConLoss",
    "SwAVLoss",
    "TACOLoss",
    "TripletLoss",
    "VICRegLoss",
    "barlow_twins",
    "clip_loss",
    "dcl",
    "dclw",
    "dgi_loss",
    "dino_loss",
    "ibot_patch_loss",
    "info_nce",
    "koleo",
    "masked_cross_entropy",
    "masked_l1",
    "masked_mse",
    "mil_nce",
    "min_norm_weights",
    "negative_cosine",
    "nt_xent",
    "region_contrastive",
    "region_pool",
    "sce",
    "sinkhorn_knopp",
    "sla_aggregate",
    "sla_joint_labels",
    "sla_self_distillation",
    "soft_target_distillation",
    "supcon",
    "swav_loss",
    "taco",
    "triplet",
    "vicreg",
]

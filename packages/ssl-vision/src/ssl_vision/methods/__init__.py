"""Image methods, one file each: the paper's algorithm box in code."""

from ssl_vision.methods.barlow_twins import BarlowTwins, BarlowTwinsConfig
from ssl_vision.methods.byol import BYOL, BYOLConfig
from ssl_vision.methods.croco import CroCo, CroCoConfig, CroCoV2Config
from ssl_vision.methods.dino import DINO, DINOConfig
from ssl_vision.methods.dmjd import DMJD, DMJDConfig
from ssl_vision.methods.droppos import DropPos, DropPosConfig
from ssl_vision.methods.mae import MAE, MAEConfig
from ssl_vision.methods.mfm import MFM, MFMConfig
from ssl_vision.methods.moco_v2 import MoCoV2, MoCoV2Config
from ssl_vision.methods.moco_v3 import MoCoV3, MoCoV3Config
from ssl_vision.methods.multitask import MultiTask, MultiTaskConfig
from ssl_vision.methods.nnclr import NNCLR, NNCLRConfig
from ssl_vision.methods.simclr import SimCLR, SimCLRConfig
from ssl_vision.methods.simmim import SimMIM, SimMIMConfig
from ssl_vision.methods.simsiam import SimSiam, SimSiamConfig
from ssl_vision.methods.sit import SiT, SiTConfig
from ssl_vision.methods.sla import SLA, SLAConfig
from ssl_vision.methods.swav import SwAV, SwAVConfig
from ssl_vision.methods.vicreg import VICReg, VICRegConfig

__all__ = [
    "CroCo",
    "CroCoConfig",
    "CroCoV2Config",
    "BYOL",
    "BYOLConfig",
    "BarlowTwins",
    "BarlowTwinsConfig",
    "DINO",
    "DINOConfig",
    "DMJD",
    "DMJDConfig",
    "DropPos",
    "DropPosConfig",
    "MAE",
    "MAEConfig",
    "MFM",
    "MFMConfig",
    "MoCoV2",
    "MoCoV2Config",
    "MoCoV3",
    "MoCoV3Config",
    "MultiTask",
    "MultiTaskConfig",
    "NNCLR",
    "NNCLRConfig",
    "SLA",
    "SLAConfig",
    "SiT",
    "SiTConfig",
    "SimCLR",
    "SimCLRConfig",
    "SimMIM",
    "SimMIMConfig",
    "SimSiam",
    "SimSiamConfig",
    "SwAV",
    "SwAVConfig",
    "VICReg",
    "VICRegConfig",
]

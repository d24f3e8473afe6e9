"""The medical modality as the core discovers it (entry point ``ssl_core.modalities: medical``)."""

from __future__ import annotations

from typing import Any

from ssl_core.modality import Modality, Recipe
from ssl_core.train.config import TrainConfig
from ssl_medical.data.config import DATASETS, MedicalDataConfig
from ssl_medical.data.load import load_data
from ssl_medical.export import export_extra
from ssl_medical.methods.cswin_multitask import CSwinMultiTask, CSwinMultiTaskConfig
from ssl_medical.methods.models_genesis import ModelsGenesis, ModelsGenesisConfig
from ssl_medical.methods.pathology import PathologyMoCo, PathologyMoCoConfig
from ssl_medical.methods.signal_transforms import SignalTransforms, SignalTransformsConfig
from ssl_medical.methods.swin_pretext import SwinPretextConfig, SwinUNETRPretext
from ssl_medical.methods.vit_autoenc import ViTAutoEncSSL, ViTAutoEncSSLConfig
from ssl_medical.methods.volume_fusion import VolumeFusion, VolumeFusionConfig
from ssl_medical.models.cswin import build_cswin_unet
from ssl_medical.models.monai_nets import build_monai_backbone
from ssl_medical.models.signal_transformer import build_signal_transformer
from ssl_vision.methods.common import build_resnet


def _train(epochs: float, batch_size: int, lr: float, max_minutes: float = 3.0, **kw: Any) -> TrainConfig:
    # max_minutes caps training so that the default run, probes included, ends within 5 minutes on 2 cores
    return TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, max_minutes=max_minutes, log_every=5, **kw)


# swin_pretext and cswin_multitask train with the same settings and 1.5-minute cap: the comparison at equal budget
_SWIN_BUDGET = _train(epochs=10, batch_size=4, lr=4e-4, max_minutes=1.5, weight_decay=1e-5, warmup_epochs=0.02)

modality = Modality(
    name="medical",
    summary="3-D MRI / CT volumes on MONAI (Colin27 MRI + AAL atlas by default; head CT; NIfTI / DICOM folders), "
    "ECG and other UCR signals, pathology tiles",
    data_config=MedicalDataConfig(),
    load_data=load_data,
    recipes=Modality.recipe_map(
        Recipe(
            name="volume_fusion",
            method=VolumeFusion,
            config=VolumeFusionConfig(),
            summary="Volume Fusion (MIS-FM): random blocks of one patch fused into another with alpha in {0, 1/4, "
            "1/2, 3/4, 1}; a UNet segments each voxel's alpha class (Dice + cross-entropy)",
            paper="Wang, Wu, Luo, Liu, Li, Zhang (2023), MIS-FM: 3D Medical Image Segmentation using Foundation "
            "Models Pretrained on a Large-Scale Unannotated Dataset",
            # threads=1: 0.26 s/step against 0.66 at 2 threads on loaded cores (batch 8 of 32^3); the cap decides
            train=_train(epochs=20, batch_size=8, lr=1e-3, max_minutes=2.5, threads=1, weight_decay=1e-5),
        ),
        Recipe(
            name="models_genesis",
            method=ModelsGenesis,
            config=ModelsGenesisConfig(),
            summary="Models Genesis: a UNet restores patches corrupted by a Bezier intensity map, local pixel "
            "shuffling and in- / out-painting (MSE)",
            paper="Zhou, Sodha, Pang, Gotway, Liang (2021), Models Genesis",
            train=_train(epochs=20, batch_size=8, lr=1e-3, max_minutes=2.5, threads=1, weight_decay=1e-5),
        ),
        Recipe(
            name="swin_pretext",
            method=SwinUNETRPretext,
            config=SwinPretextConfig(),
            summary="Swin UNETR pretraining: two rotated, box-inpainted views per 32^3 patch; rotation CE + NT-Xent "
            "(t=0.5) + L1 reconstruction on the swinViT's last stage; the full SwinUNETR is exported "
            "(method.weighting=uncertainty|mgda)",
            paper="Tang, Yang, Li, Roth, Landman, Xu, Nath, Hatamizadeh (2022), Self-Supervised Pre-Training of Swin "
            "Transformers for 3D Medical Image Analysis",
            train=_SWIN_BUDGET,
        ),
        Recipe(
            name="cswin_multitask",
            method=CSwinMultiTask,
            config=CSwinMultiTaskConfig(),
            summary="CSwin UNet (cross-shaped stripe attention along D, H and W, LePE) encoder pretrained on rotation "
            "+ contrastive + inpainting at once, losses balanced by learned uncertainty (method.weighting=fixed|mgda)",
            paper="Li, Wynne, Wang, Qiu, Roper, Pan, Jani, Liu, Patel, Mao, Yang (2023), Cross-Shaped Windows "
            "Transformer with Self-supervised Pretraining for Clinically Significant Prostate Cancer Detection in "
            "Bi-parametric MRI",
            train=_SWIN_BUDGET,
        ),
        Recipe(
            name="vit_autoenc",
            method=ViTAutoEncSSL,
            config=ViTAutoEncSSLConfig(),
            summary="MONAI's tutorial recipe: ViTAutoEnc reconstructs patches from dropped / shuffled voxels, plus "
            "a contrastive loss between the two views (negatives gathered across processes)",
            paper="MONAI tutorials, self_supervised_pretraining/vit_unetr_ssl (Project MONAI, 2022)",
            # lr 1e-3 beat the tutorial's 1e-4 in 3-minute runs (linear 14.6% against 13.2%); 10 epochs took 1.6 of
            # the 2.5 minutes on quiet cores (kNN / linear 12.41% / 12.41%): 14 epochs
            train=_train(epochs=14, batch_size=8, lr=1e-3, max_minutes=2.5, warmup_epochs=0.02, weight_decay=0.0),
        ),
        Recipe(
            name="signal_transforms",
            method=SignalTransforms,
            config=SignalTransformsConfig(),
            summary="transformation recognition on ECG: a transformer encoder with one binary head per "
            "transformation (noise 15 dB, scale x1.1, negation, flip, 20-piece permutation, time warping); probed on "
            "ECG5000 with kNN, linear and 1-NN Euclidean (nn1_euclid)",
            paper="Sarkar, Etemad (2020), Self-supervised ECG Representation Learning for Emotion Recognition",
            # threads=1: 0.3 s/step against 1.2-7.7 s at 2 threads on loaded cores; on quiet cores 50 epochs (350
            # steps) took 0.6 of the 2 minutes (kNN / linear 86.69% / 91.38%): 150 epochs, the cap decides
            train=_train(
                epochs=150, batch_size=64, lr=1e-3, max_minutes=2.0, threads=1, warmup_epochs=1, weight_decay=0.05
            ),
            data=MedicalDataConfig(path="ecg5000"),
        ),
        Recipe(
            name="pathology",
            method=PathologyMoCo,
            config=PathologyMoCoConfig(),
            summary="MoCo v2 on pathology tiles with HED stain jitter (colour deconvolution) and rotations; probe: "
            "identify held-out IHC tiles through stain / rotation / shift changes",
            paper="Chen, Fan, Girshick, He (2020), Improved Baselines with Momentum Contrastive Learning; Tellez "
            "et al. (2019), Quantifying the effects of data augmentation and stain color normalization in "
            "convolutional neural networks for computational pathology",
            # threads=1: 140-240 tiles/s against 16 at 2 threads on loaded cores
            train=_train(
                epochs=40,
                batch_size=128,
                lr=2e-3,
                weight_decay=1e-4,
                warmup_epochs=0.5,
                channels_last=True,
                ema_momentum=0.99,
                ema_momentum_end=1.0,
                threads=1,
            ),
            data=MedicalDataConfig(path="pathology"),
        ),
    ),
    backbones={
        "monai": build_monai_backbone,
        "cswin_unet": build_cswin_unet,
        "signal_transformer": build_signal_transformer,
        "resnet": build_resnet,  # the pathology recipe's tile backbone (ssl-vision's ResNet)
    },
    datasets=DATASETS,
    export_extra=export_extra,
)

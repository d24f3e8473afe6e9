"""The vision modality as the core discovers it (entry point ``ssl_core.modalities: vision``)."""

from ssl_core.eval.config import ProbeConfig
from ssl_core.modality import Modality, Recipe
from ssl_core.train.config import TrainConfig
from ssl_vision.data.images import DATASETS, VisionDataConfig, load_data
from ssl_vision.methods.common import build_resnet
from ssl_vision.methods.simclr import SimCLR, SimCLRConfig

# The probes of every recipe train on a class-stratified 10,000-image subset of the training set and
# score all test images (10,000 for Fashion-MNIST).
PROBE = ProbeConfig(train_size=10_000)

modality = Modality(
    name="vision",
    summary="images (Fashion-MNIST by default; image folders and IDX files with --data)",
    data_config=VisionDataConfig(),
    load_data=load_data,
    recipes=Modality.recipe_map(
        Recipe(
            name="simclr",
            method=SimCLR,
            config=SimCLRConfig(),
            summary="SimCLR: two augmented views, NT-Xent contrastive loss",
            paper="Chen et al., 2020, A Simple Framework for Contrastive Learning of Visual Representations",
            # two epochs (468 steps) take about 3.3 minutes on 2 CPU cores; on a slower machine max_minutes
            # fits the schedules into 3.5 minutes, so the main job stays under 5 minutes with its probes
            train=TrainConfig(
                epochs=2,
                max_minutes=3.5,
                batch_size=256,
                optimizer="adamw",
                lr=2e-3,
                weight_decay=1e-4,
                warmup_epochs=0.1,
                channels_last=True,
            ),
            probe=PROBE,
        ),
    ),
    backbones={"resnet": build_resnet},
    datasets=DATASETS,
)

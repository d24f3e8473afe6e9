"""The audio modality as the core discovers it (entry point ``ssl_core.modalities: audio``)."""

from __future__ import annotations

from typing import Any

from ssl_audio.data import DATASETS, AudioDataConfig, load_data
from ssl_audio.export import save_pretrained
from ssl_audio.methods.atst import ATST, ATSTConfig
from ssl_audio.methods.audio_mae import AudioMAE, AudioMAEConfig
from ssl_audio.methods.byol_a import BYOLA, BYOLAConfig
from ssl_audio.methods.hubert import HuBERT, HuBERTConfig
from ssl_audio.methods.w2v_bert import W2vBERT, W2vBERTConfig
from ssl_audio.methods.wav2vec2 import Wav2Vec2, Wav2Vec2Config
from ssl_audio.models.conformer import build_w2v_bert
from ssl_audio.models.spectrogram import build_byola_cnn, build_spec_vit
from ssl_audio.models.wav2vec2 import build_wav2vec2
from ssl_core.modality import Modality, Recipe
from ssl_core.train.config import TrainConfig


def _train(epochs: float, batch_size: int, lr: float, **kw: Any) -> TrainConfig:
    # max_minutes caps training so that the default run, probes included, ends within 5 minutes on 2 cores
    return TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, max_minutes=3.5, log_every=5, **kw)


modality = Modality(
    name="audio",
    summary="speech and sound on torchaudio (espeak-ng keywords by default; KLettres, Tux Paint, WAV/FLAC/OGG folders)",
    data_config=AudioDataConfig(),
    load_data=load_data,
    recipes=Modality.recipe_map(
        Recipe(
            name="wav2vec2",
            method=Wav2Vec2,
            config=Wav2Vec2Config(),
            summary="wav2vec 2.0: masked frames pick their Gumbel-quantized latent among distractors, + diversity",
            paper="Baevski, Zhou, Mohamed, Auli (2020), wav2vec 2.0: A Framework for Self-Supervised Learning of "
            "Speech Representations",
            train=_train(epochs=14, batch_size=32, lr=1e-3, warmup_epochs=0.5, weight_decay=0.01),
        ),
        Recipe(
            name="hubert",
            method=HuBERT,
            config=HuBERTConfig(),
            summary="HuBERT: masked frames predict k-means units of MFCCs (iteration 1) or of a trained layer "
            "(method.target_run)",
            paper="Hsu, Bolte, Tsai, Lakhotia, Salakhutdinov, Mohamed (2021), HuBERT: Self-Supervised Speech "
            "Representation Learning by Masked Prediction of Hidden Units",
            train=_train(epochs=8, batch_size=32, lr=1e-3, warmup_epochs=0.5, weight_decay=0.01),
        ),
        Recipe(
            name="w2v_bert",
            method=W2vBERT,
            config=W2vBERTConfig(),
            summary="w2v-BERT: conformer; contrastive task on Gumbel-quantized targets + masked prediction of their "
            "token ids, end to end",
            paper="Chung, Zhang, Han, Chiu, Qin, Pang, Wu (2021), w2v-BERT: Combining Contrastive Learning and Masked "
            "Language Modeling for Self-Supervised Speech Pre-Training",
            # lr 3e-4: kNN 41.1% / linear 96.1% against 36.8% / 92.6% at 1e-3 (one run each)
            train=_train(epochs=25, batch_size=32, lr=3e-4, warmup_epochs=0.5, weight_decay=0.01),
        ),
        Recipe(
            name="audio_mae",
            method=AudioMAE,
            config=AudioMAEConfig(),
            summary="Audio-MAE / Bird-MAE: 80% of the log-mel patches removed, ViT on the visible rest, MSE on them",
            paper="Huang, Xu, Li, Baevski, Auli, Galuba, Metze, Feichtenhofer (2022), Masked Autoencoders that Listen; "
            "Rauch et al. (2025), Can Masked Autoencoders Also Listen to Birds?",
            train=_train(epochs=30, batch_size=64, lr=1e-3, warmup_epochs=2, weight_decay=0.05, betas=(0.9, 0.95)),
        ),
        Recipe(
            name="atst",
            method=ATST,
            config=ATSTConfig(),
            summary="ATST: EMA teacher-student transformer on log-mel frames; masked frames predict the teacher's "
            "(ATST-Frame; method.objective=clip|both adds ATST-Clip)",
            paper="Li, Shao, Li (2023), Self-supervised Audio Teacher-Student Transformer for Both Clip-level and "
            "Frame-level Tasks",
            train=_train(epochs=20, batch_size=64, lr=5e-4, warmup_epochs=1, weight_decay=0.01, ema_momentum=0.99),
        ),
        Recipe(
            name="byol_a",
            method=BYOLA,
            config=BYOLAConfig(),
            summary="BYOL-A: BYOL on log-mels with mixup and random resize crop, CNN with mean+max temporal pooling",
            paper="Niizumi, Takeuchi, Ohishi, Harada, Kashino (2021), BYOL for Audio: Self-Supervised Learning for "
            "General-Purpose Audio Representation",
            train=_train(epochs=20, batch_size=64, lr=3e-4, warmup_epochs=1, ema_momentum=0.99),  # the paper's lr
        ),
    ),
    backbones={
        "wav2vec2": build_wav2vec2,
        "w2v_bert": build_w2v_bert,
        "spec_vit": build_spec_vit,
        "byola_cnn": build_byola_cnn,
    },
    datasets=DATASETS,
    export_extra=save_pretrained,
)

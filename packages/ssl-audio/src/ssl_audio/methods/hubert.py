"""HuBERT (Hsu et al., 2021, "HuBERT: Self-Supervised Speech Representation Learning by Masked Prediction of
Hidden Units").

Algorithm (Sec. II): a wav2vec 2.0 backbone (conv feature encoder on the waveform, transformer) sees its frames
with spans masked (the masked frames replaced by a learned embedding) and predicts, for every frame, the
*hidden unit* of that frame: the k-means cluster of an acoustic feature of the unmasked frame. The prediction
of frame ``t`` is a distribution over the ``K`` clusters,

    p(c | x, t) = softmax_c( cos(A o_t, e_c) / tau ),

with ``o_t`` the last transformer layer, ``A`` a projection, ``e_c`` a learned embedding per cluster and
``tau = 0.1``; the loss is the cross-entropy on masked frames, ``L = alpha L_m + (1 - alpha) L_u`` with
``alpha = 1`` (the paper's best: masked frames only; ``unmasked_weight`` sets ``1 - alpha``, default 0).

Iterations (Sec. II-C, IV-B): the first clusters 39-d MFCCs; each later one clusters the hidden states of one
layer of the model trained before it. Here the cluster ids are computed from the batch with centroids fitted
once (see :mod:`ssl_audio.pretext.targets`): a method sees no training set when it is built, so the centroids
are fitted lazily by seeded k-means on the frames of the FIRST training batch (``batch_size x 49`` frames:
1,568 for the default batch of 32, about 30 per cluster at ``K = 50``) and kept as buffers (checkpointed; a
resumed run keeps them). The paper fits k-means on a 10% sample of the corpus offline; the lazy fit is the
small-data stand-in.

Second iteration, on the run folder (or ``selfsup export`` folder) of a first one::

    uv run selfsup pretrain audio/hubert --set method.target_run=runs/audio-hubert-<date>-<time> \\
        --set method.target_layer=3 --set method.num_clusters=100

``target_layer`` counts as Hugging Face's ``hidden_states`` (0: transformer input, ``n``: output of layer
``n``; the paper clusters layer 6 of 12, so about the middle). The frozen iteration-1 backbone is a submodule
(no gradients, in eval mode) and runs once per batch to label it.

Settings the paper leaves to fairseq: ``mask_prob = 0.65`` (share of frames covered by spans before overlap,
:func:`ssl_core.masking.time_mask`; about half the frames end up masked) with ``mask_length = 5`` instead of 10,
because our clips are 1 s (49 frames) rather than utterances of 10-15 s; fairseq's feature penalty (an L2 on
the conv features) and its 0.1 gradient scale on the conv encoder are left out.

The backbone is :class:`ssl_audio.models.wav2vec2.Wav2Vec2Backbone` with ``model_type="hubert"``, so
``selfsup export`` writes a Hugging Face ``HubertModel``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ssl_audio.info import AudioInfo
from ssl_audio.methods.common import waveform_item
from ssl_audio.models.wav2vec2 import Wav2Vec2BackboneConfig, build_wav2vec2
from ssl_audio.pretext.targets import KMeansTargets, layer_features, load_target_backbone, mfcc_features
from ssl_core.errors import ConfigError
from ssl_core.losses import masked_cross_entropy
from ssl_core.masking import time_mask
from ssl_core.method import BackboneSpec, Method, MethodOutput


def cosine_logits(proj: torch.Tensor, embeddings: torch.Tensor, temperature: float) -> torch.Tensor:
    """``cos(proj_t, e_c) / tau`` for every frame and cluster.

    Shapes:
        - proj: ``(..., E)``; embeddings: ``(K, E)``
        - output: ``(..., K)``
    """
    return F.normalize(proj, dim=-1) @ F.normalize(embeddings, dim=-1).T / temperature


def hubert_loss(
    logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, unmasked_weight: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """HuBERT's ``alpha L_m + (1 - alpha) L_u`` with ``1 - alpha = unmasked_weight`` (eq. 3-4 of the paper,
    each term the mean cross-entropy over its frames); returns ``(loss, L_m, L_u)``.

    Shapes:
        - logits: ``(B, F, K)``; labels: ``(B, F)`` long; mask: ``(B, F)`` bool (True: masked)
    """
    l_m = masked_cross_entropy(logits, labels, mask)
    l_u = masked_cross_entropy(logits, labels, ~mask) if unmasked_weight else logits.new_zeros(())
    return (1 - unmasked_weight) * l_m + unmasked_weight * l_u, l_m, l_u


@dataclass
class HuBERTConfig:
    """HuBERT settings (``--set method.<name>=<value>``).

    Args:
        backbone: the wav2vec 2.0 architecture (its ``model_type`` is set to ``"hubert"``).
        num_clusters: ``K`` of the k-means targets (100 for MFCCs in the paper, 500 later; 50 suits ~1,600
            one-second clips).
        final_dim: size of the projection ``A o_t`` and of the cluster embeddings (256 in BASE).
        temperature: ``tau`` of the cosine logits (0.1).
        mask_prob: share of frames covered by mask spans before overlaps (0.65, fairseq's ``mask_prob``).
        mask_length: span length in frames (5 = 100 ms for 1 s clips; 10 in the paper).
        min_masks: minimum spans per clip.
        unmasked_weight: ``1 - alpha``, the weight of the loss on unmasked frames (0).
        kmeans_seed: seed of the k-means fit.
        target_run: ``None`` for the first iteration (MFCC targets); else the run folder or export folder of an
            earlier HuBERT (or wav2vec 2.0) run whose layer ``target_layer`` is clustered.
        target_layer: hidden-state index of the target backbone (0 = transformer input).
    """

    backbone: Wav2Vec2BackboneConfig = field(default_factory=lambda: Wav2Vec2BackboneConfig(model_type="hubert"))
    num_clusters: int = 50
    final_dim: int = 128
    temperature: float = 0.1
    mask_prob: float = 0.65
    mask_length: int = 5
    min_masks: int = 2
    unmasked_weight: float = 0.0
    kmeans_seed: int = 0
    target_run: str | None = None
    target_layer: int = 3


class HuBERT(Method):
    """HuBERT: masked prediction of k-means cluster ids of MFCC frames (or of an earlier model's layer).

    Shapes:
        - batch: ``(B, T)`` waveforms
        - targets: ``(B, F)`` cluster ids, ``F`` the backbone's frames (49 per second)
        - :meth:`embed`: ``(B, T) -> (B, D)``, the mean of the last layer's frames
    """

    def __init__(self, config: HuBERTConfig, info: AudioInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        c = config
        if not 0.0 <= c.unmasked_weight <= 1.0:
            raise ConfigError(f"unmasked_weight must lie in [0, 1], got {c.unmasked_weight}")
        if c.temperature <= 0:
            raise ConfigError(f"temperature must be positive, got {c.temperature}")
        self.backbone_config = dataclasses.replace(c.backbone, model_type="hubert", sample_rate=info.sample_rate)
        self.backbone = build_wav2vec2(self.backbone_config.to_dict())
        d = self.backbone.embed_dim
        self.final_proj = nn.Linear(d, c.final_dim)
        self.label_embs = nn.Parameter(torch.empty(c.num_clusters, c.final_dim).uniform_())
        if c.target_run is None:
            self.target_backbone = None
            feature_dim = 39
        else:
            self.target_backbone = load_target_backbone(c.target_run)
            feature_dim = self.target_backbone.embed_dim
        self.targets = KMeansTargets(c.num_clusters, feature_dim, seed=c.kmeans_seed)

    def train(self, mode: bool = True) -> HuBERT:
        super().train(mode)
        if self.target_backbone is not None:
            self.target_backbone.eval()  # frozen teacher: no dropout
        return self

    def pretext(self):
        return waveform_item

    @torch.no_grad()
    def target_features(self, wave: torch.Tensor, num_frames: int) -> torch.Tensor:
        """The frame features whose clusters are the targets: MFCCs, or the target backbone's layer.

        Shapes:
            - wave: ``(B, T)``; output: ``(B, num_frames, feature_dim)``
        """
        with torch.autocast(wave.device.type, enabled=False):
            if self.target_backbone is None:
                return mfcc_features(wave, num_frames, self.info.sample_rate)
            feats = layer_features(self.target_backbone, wave.float(), self.config.target_layer)
        if feats.shape[1] != num_frames:
            raise ConfigError(f"the target backbone makes {feats.shape[1]} frames per clip, this one {num_frames}")
        return feats

    @torch.no_grad()
    def labels(self, wave: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Cluster id per frame; fits the centroids on this batch if they are not fitted yet."""
        feats = self.target_features(wave, num_frames)
        if not self.targets.fitted:
            self.targets.fit(feats)
        return self.targets(feats)

    def forward(self, batch: torch.Tensor) -> MethodOutput:
        c, wave = self.config, batch
        features = self.backbone.extract_features(wave)
        b, f, _ = features.shape
        labels = self.labels(wave, f)
        mask = time_mask(b, f, c.mask_prob, c.mask_length, c.min_masks).to(wave.device)
        hidden_in, _ = self.backbone.project(features)
        out = self.backbone.encode(hidden_in, mask=mask)
        logits = cosine_logits(self.final_proj(out), self.label_embs, c.temperature)
        loss, l_m, l_u = hubert_loss(logits.float(), labels, mask, c.unmasked_weight)
        with torch.no_grad():
            acc = (logits.argmax(-1) == labels)[mask].float().mean()
        return MethodOutput(loss, {"loss_m": l_m.detach(), "acc_m": acc, "mask_share": mask.float().mean()})

    def backbone_spec(self) -> BackboneSpec:
        return BackboneSpec(
            name="wav2vec2",
            config=self.backbone_config.to_dict(),
            embed_dim=self.backbone.embed_dim,
            input=self.info.backbone_input(),
        )

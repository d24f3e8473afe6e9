"""wav2vec 2.0 (Baevski et al., 2020, "wav2vec 2.0: A Framework for Self-Supervised Learning of Speech
Representations").

Algorithm (Sec. 2-3): a conv feature encoder maps the waveform to latent frames ``z_t`` (50 per second). Spans
of frames are masked (their projected features replaced by one learned vector) and a transformer turns the
frames into contexts ``c_t``. The unmasked latents are discretised by a Gumbel-softmax product quantizer
(:mod:`ssl_audio.models.quantizer`) into targets ``q_t``. For every masked frame the model must pick ``q_t``
among ``K`` distractors, quantized latents of OTHER masked frames of the same utterance (eq. 3):

    L_m = -log( exp(sim(c_t, q_t) / kappa) / sum_{q~ in {q_t} u Q_t} exp(sim(c_t, q~) / kappa) ),

with ``sim`` the cosine similarity of ``project_hid(c_t)`` and ``project_q(q)`` and ``kappa = 0.1``. A
distractor identical to ``q_t`` (same codewords) is left out of the softmax, as fairseq / Hugging Face do. The
diversity loss ``L_d = (G V - perplexity) / (G V)`` (Hugging Face's normalisation of eq. 4), with the perplexity
of the quantizer's softmax averaged over the masked frames, pushes the ``G`` codebooks of ``V`` entries to be
used equally: ``L = L_m + alpha L_d`` with ``alpha = 0.1``.

Reduction: ``L_m`` and ``L_d`` are MEANS over the masked frames of the batch (fairseq divides its summed loss by
the number of masked frames, the "sample size"); Hugging Face's ``Wav2Vec2ForPreTraining`` returns the sum, so
its loss is ours times ``mask.sum()`` (tests/test_wav2vec2.py checks this on shared weights).

Settings the paper leaves to fairseq or to longer audio: ``mask_prob = 0.65`` is fairseq's share of frames
covered by spans BEFORE overlap (``int(mask_prob * T / M + u)`` span starts, see
:func:`ssl_core.masking.time_mask`; about half the frames end up masked); ``mask_length = 5`` instead of 10
because our clips are 1 s (49 frames), not utterances of 10-15 s (with 10, three spans would cover the
clip); ``V = 32`` codewords per group instead of 320, for our small data (see :class:`Wav2Vec2Config`). The
Gumbel temperature goes from 2 to 0.5 geometrically over the run (the paper: a factor 0.999995 per update over
400k updates, floored at 0.5). Fairseq's feature penalty (``feature_penalty``: weight of the mean
squared conv feature, 10 in fairseq's BASE) is off by default, as in Hugging Face; its 0.1 gradient scale on the
conv encoder is left out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ssl_audio.info import AudioInfo
from ssl_audio.methods.common import (
    contrastive_logits,
    contrastive_loss,
    sample_negatives,
    waveform_item,
)
from ssl_audio.models.quantizer import GumbelVectorQuantizer
from ssl_audio.models.wav2vec2 import Wav2Vec2Backbone, Wav2Vec2BackboneConfig
from ssl_core.masking import time_mask
from ssl_core.method import BackboneSpec, Method, MethodOutput

# the conv encoder's first two layers narrower than the rest: they run on 3,200 and 1,600 steps per second, and
# at 128 channels they cost more than the whole transformer (the probes' embedding time is mostly theirs)
_CONV_DIM = [64, 64, 128, 128, 128, 128, 128]


@dataclass
class Wav2Vec2Config:
    """wav2vec 2.0 settings (``--set method.<name>=<value>``).

    Args:
        backbone: the conv encoder + transformer (:class:`Wav2Vec2BackboneConfig`; small CPU default, conv channels
            64, 64, 128 x 5).
        mask_prob: share of frames covered by mask spans before overlap (fairseq's 0.65; about 50% masked).
        mask_length: span length ``M`` in frames (10 in the paper; 5 for our 1 s, 49-frame clips).
        min_masks: at least this many spans per clip (2).
        num_negatives: distractors ``K`` per masked frame, drawn with replacement among the other masked frames
            of the same clip (100 in the paper).
        contrastive_temperature: ``kappa`` of the cosine logits (0.1).
        diversity_weight: ``alpha`` (0.1).
        feature_penalty: weight of the mean squared conv feature (fairseq's ``feature_pen``, 10 in its BASE
            config; 0 = off, as Hugging Face).
        num_codevector_groups: ``G`` codebooks (2).
        num_codevectors_per_group: ``V`` entries per codebook (320 in the paper; 32 here: with 320 x 320
            codeword pairs for our ~75k training frames the targets are near-unique hashes of the features and
            the contrastive loss stayed at chance, log(K + 1), for the whole default run; with 32 it falls from
            4.6 to 3.7 and the codebooks stay in use, perplexity ~50 of 64).
        codevector_dim: size of the concatenated codevector (256 in BASE).
        proj_codevector_dim: size of the space the cosine is taken in (``final_dim``, 256 in BASE).
        gumbel_temperature: Gumbel-softmax temperature at the first step (2.0).
        gumbel_temperature_end: at the last step (0.5), reached geometrically.
    """

    backbone: Wav2Vec2BackboneConfig = field(default_factory=lambda: Wav2Vec2BackboneConfig(conv_dim=_CONV_DIM))
    mask_prob: float = 0.65
    mask_length: int = 5
    min_masks: int = 2
    num_negatives: int = 100
    contrastive_temperature: float = 0.1
    diversity_weight: float = 0.1
    feature_penalty: float = 0.0
    num_codevector_groups: int = 2
    num_codevectors_per_group: int = 32
    codevector_dim: int = 128
    proj_codevector_dim: int = 128
    gumbel_temperature: float = 2.0
    gumbel_temperature_end: float = 0.5


class Wav2Vec2(Method):
    """wav2vec 2.0: masked contrastive prediction of quantized latents, plus codebook diversity.

    Submodules are named as in Hugging Face's ``Wav2Vec2ForPreTraining`` (``backbone`` is its ``wav2vec2``;
    ``quantizer``, ``project_hid``, ``project_q``), so the weights map key for key.

    Shapes:
        - batch: ``(B, T)`` waveforms
        - optional ``mask`` ``(B, F)`` bool and ``negatives`` ``(B, F, K)`` frame indices (tests inject them)
        - :meth:`embed`: ``(B, T) -> (B, embed_dim)``
    """

    def __init__(self, config: Wav2Vec2Config, info: AudioInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        c = config
        self.backbone = Wav2Vec2Backbone(dataclasses.replace(c.backbone, sample_rate=info.sample_rate))
        self.quantizer = GumbelVectorQuantizer(
            c.backbone.conv_dim[-1], c.num_codevector_groups, c.num_codevectors_per_group, c.codevector_dim
        )
        self.project_hid = nn.Linear(c.backbone.hidden_size, c.proj_codevector_dim)
        self.project_q = nn.Linear(c.codevector_dim, c.proj_codevector_dim)

    def pretext(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return waveform_item  # masks and distractors are drawn per batch in forward

    def schedules(self, total_steps: int, steps_per_epoch: int) -> Mapping[str, np.ndarray]:
        c = self.config
        t = np.arange(total_steps) / max(total_steps - 1, 1)
        return {"gumbel_temperature": c.gumbel_temperature * (c.gumbel_temperature_end / c.gumbel_temperature) ** t}

    def forward(
        self, batch: torch.Tensor, mask: torch.Tensor | None = None, negatives: torch.Tensor | None = None
    ) -> MethodOutput:
        c = self.config
        features = self.backbone.extract_features(batch)  # (B, F, C)
        hidden_in, normed = self.backbone.project(features)
        b, f, _ = hidden_in.shape
        if mask is None:
            mask = time_mask(b, f, mask_prob=c.mask_prob, mask_length=c.mask_length, min_masks=c.min_masks)
        mask = mask.to(device=batch.device, dtype=torch.bool)
        if negatives is None:
            negatives = sample_negatives(mask, c.num_negatives).to(batch.device)
        context = self.project_hid(self.backbone.encode(hidden_in, mask))  # (B, F, P)
        tau = self.current_step["gumbel_temperature"] if self.training else None
        codes, perplexity = self.quantizer(normed, mask, temperature=tau)
        targets = self.project_q(codes)  # (B, F, P)

        logits = contrastive_logits(context, targets, mask, negatives, c.contrastive_temperature)
        contrastive = contrastive_loss(logits)
        gv = c.num_codevector_groups * c.num_codevectors_per_group
        diversity = (gv - perplexity) / gv
        loss = contrastive + c.diversity_weight * diversity
        logs = {
            "contrastive": contrastive.detach(),
            "diversity": diversity.detach(),
            "perplexity": perplexity.detach(),
            "acc": (logits.detach().argmax(dim=1) == 0).float().mean(),
            "masked": mask.float().mean(),
        }
        if c.feature_penalty > 0:
            pen = features.float().pow(2).mean()
            loss = loss + c.feature_penalty * pen
            logs["feature_pen"] = pen.detach()
        return MethodOutput(loss, logs)

    def backbone_spec(self) -> BackboneSpec:
        return BackboneSpec(
            name="wav2vec2",
            config=self.backbone.config.to_dict(),
            embed_dim=self.backbone.embed_dim,
            input=self.info.backbone_input(frame_rate=self.backbone.frame_rate),
        )

"""w2v-BERT (Chung et al., 2021, "w2v-BERT: Combining Contrastive Learning and Masked Language Modeling for
Self-Supervised Speech Pre-Training").

Algorithm (Sec. 2, Fig. 1), trained end to end in one pass:

1. Feature encoder: log-mel -> two stride-(2, 2) convolutions -> frames ``z_t`` (25 frames/s).
2. Contrastive module: spans of frames are masked (wav2vec 2.0's span mask; the masked ``z_t`` replaced by random
   vectors), projected and contextualised by conformer blocks into context vectors ``c_t``. The UNMASKED ``z_t``
   go through a Gumbel-softmax product quantizer (:class:`ssl_audio.models.quantizer.GumbelVectorQuantizer`) into
   quantized vectors ``q_t`` and token ids. The contrastive loss is wav2vec 2.0's: for each masked frame,
   ``-log exp(sim(c_t, q_t)/kappa) / sum_{q~ in Q_t} exp(sim(c_t, q~)/kappa)`` with ``Q_t`` = ``q_t`` and
   ``num_negatives`` distractors drawn uniformly from the other masked frames of the same clip, ``sim`` the cosine
   of linear projections and ``kappa = 0.1``; plus the codebook diversity loss ``(G V - perplexity) / (G V)``
   weighted by ``alpha = 0.1``: ``L_c = L_w + alpha L_d``.
3. Masked-prediction module: conformer blocks on ``c_t``; a linear softmax layer predicts, at each masked frame,
   the quantizer's token id of that frame: ``L_m``, the cross-entropy over masked frames.

The loss is ``L = beta L_c + gamma L_m`` with ``beta = gamma = 1``. Gradients of both terms reach the feature
encoder; the token ids are targets (no gradient), so the quantizer learns from the contrastive task only.

Choices the paper leaves open or that differ here:

- Token ids: the quantizer samples its code with Gumbel noise in training and returns only the vectors, so the
  MLM target of a frame is the quantizer's noise-free code, ``argmax`` of its logits (the code it picks in
  evaluation). With one group (``num_groups = 1``, a single codebook, as the paper's token ids) that is one id
  per frame; with ``G > 1`` each group's id is predicted (``G`` heads, mean cross-entropy).
- Quantizer: the diversity term's perplexity is the quantizer's, from the noise-free code softmax with
  ``log(p + 1e-7)`` (without the epsilon its gradient is NaN once a code's mean probability underflows to 0: that
  stopped a first default run at step 34), and the code logits start at unit scale (``code_logit_init``): the
  paper's ``N(0, 1)`` weights over ``C = 512`` LayerNormed inputs give logits of standard deviation ~22, a
  softmax that is one-hot from the start, so the diversity term has no gradient, and on our 1,540 clips the
  codebook collapsed to 2-3 codes within 10 steps.
- Gumbel temperature: annealed from 2 to 0.5 over the run, geometrically (the schedule ``gumbel_temp``; wav2vec
  2.0 decays by 0.999995 per update, which would stay near 2 in a run of a few hundred steps).
- Sizes for 1 s clips on CPU: 64 log-mel bands, ``D = 144``, 2 + 2 conformer blocks, spans of 3 frames (120 ms)
  with ``mask_prob = 0.65`` (about half the frames masked), 320 codes, 20 distractors (drawn with replacement,
  as fairseq, from the ~12 masked frames of a clip; a distractor equal to the positive is left out).
- The backbone is our own (:mod:`ssl_audio.models.conformer`, on ``torchaudio.models.Conformer``); it has no
  Hugging Face export format.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
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
from ssl_audio.models.conformer import ConformerBackboneConfig, build_w2v_bert
from ssl_audio.models.quantizer import GumbelVectorQuantizer
from ssl_core.errors import ConfigError
from ssl_core.losses import masked_cross_entropy
from ssl_core.masking import time_mask
from ssl_core.method import BackboneSpec, Method, MethodOutput


@dataclass
class W2vBERTConfig:
    """w2v-BERT settings (``--set method.<name>=<value>``).

    Args:
        backbone: the conformer backbone (feature encoder, contrastive and masked-prediction modules).
        num_groups: quantizer codebooks ``G`` (1: one token id per frame).
        num_vars: codes per codebook ``V`` (the paper: 1024).
        codevector_dim: size of the quantized vectors.
        final_dim: size of the projections compared by the contrastive loss.
        temperature: ``kappa`` of the contrastive loss (0.1).
        num_negatives: distractors per masked frame (100 in wav2vec 2.0, for utterances of many seconds).
        diversity_weight: ``alpha`` (0.1).
        contrastive_weight: ``beta`` (1).
        mlm_weight: ``gamma`` (1).
        gumbel_temp_start: Gumbel-softmax temperature at the first step (2).
        gumbel_temp_end: ... at the last step (0.5).
        code_logit_init: standard deviation of the initial code logits (weights ``N(0, init^2 / C)``).
        mask_prob: share of frames covered by mask spans before overlaps (0.65).
        mask_length: span length in frames at 25 frames/s (3 = 120 ms; the paper: 10 frames).
        min_masks: minimum spans per clip (2, so every clip has distractors).
    """

    backbone: ConformerBackboneConfig = field(default_factory=ConformerBackboneConfig)
    num_groups: int = 1
    num_vars: int = 320
    codevector_dim: int = 128
    final_dim: int = 128
    temperature: float = 0.1
    num_negatives: int = 20
    diversity_weight: float = 0.1
    contrastive_weight: float = 1.0
    mlm_weight: float = 1.0
    gumbel_temp_start: float = 2.0
    gumbel_temp_end: float = 0.5
    code_logit_init: float = 1.0
    mask_prob: float = 0.65
    mask_length: int = 3
    min_masks: int = 2


class W2vBERT(Method):
    """w2v-BERT: contrastive module with quantized targets + masked prediction of the token ids, end to end.

    Shapes:
        - batch: ``(B, T)`` waveforms
        - frames: ``F = 26`` per second (25 frames/s)
        - :meth:`embed`: ``(B, T) -> (B, D)``, the mean of the masked-prediction module's frames
    """

    def __init__(self, config: W2vBERTConfig, info: AudioInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        c = config
        if c.temperature <= 0 or c.num_negatives < 1:
            raise ConfigError(
                f"temperature must be positive and num_negatives >= 1, got {c.temperature}, {c.num_negatives}"
            )
        if min(c.gumbel_temp_start, c.gumbel_temp_end) <= 0:
            raise ConfigError(
                f"the Gumbel temperatures must be positive, got {c.gumbel_temp_start}, {c.gumbel_temp_end}"
            )
        self.backbone_config = dataclasses.replace(c.backbone, sample_rate=info.sample_rate)
        self.backbone = build_w2v_bert(self.backbone_config.to_dict())
        d, feat = self.backbone.embed_dim, self.backbone.feature_dim
        self.quantizer = GumbelVectorQuantizer(feat, c.num_groups, c.num_vars, c.codevector_dim)
        # code logits of unit scale at the start (see the module docstring)
        nn.init.normal_(self.quantizer.weight_proj.weight, std=c.code_logit_init / feat**0.5)
        self.project_q = nn.Linear(c.codevector_dim, c.final_dim)
        self.project_c = nn.Linear(d, c.final_dim)
        self.mlm_head = nn.Linear(d, c.num_groups * c.num_vars)

    def pretext(self):
        return waveform_item

    def schedules(self, total_steps: int, steps_per_epoch: int) -> Mapping[str, np.ndarray]:
        start, end = self.config.gumbel_temp_start, self.config.gumbel_temp_end
        return {"gumbel_temp": np.geomspace(start, end, total_steps) if total_steps > 1 else np.array([start])}

    @torch.no_grad()
    def token_ids(self, features: torch.Tensor) -> torch.Tensor:
        """The quantizer's noise-free code of each frame and group (the MLM targets).

        Shapes:
            - features: ``(B, F, C)``; output: ``(B, F, G)`` long
        """
        return self.quantizer.code_logits(features).argmax(-1)

    def mlm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """``(B, F, D) -> (B, F, G, V)``: the masked-prediction head."""
        c = self.config
        return self.mlm_head(hidden).view(*hidden.shape[:2], c.num_groups, c.num_vars)

    def forward(self, batch: torch.Tensor) -> MethodOutput:
        c, wave = self.config, batch
        features = self.backbone.extract_features(wave)  # (B, F, C), unmasked
        b, f, _ = features.shape
        mask = time_mask(b, f, c.mask_prob, c.mask_length, c.min_masks).to(wave.device)
        context = self.backbone.contrast(features, mask)  # (B, F, D)
        hidden = self.backbone.mlm_encode(context)

        step = self._current_step
        tau = step["gumbel_temp"] if step is not None and "gumbel_temp" in step.values else c.gumbel_temp_start
        quantized, _, code_logits = self.quantizer(features, mask, temperature=tau, return_logits=True)
        ids = code_logits.detach().argmax(-1)
        # the noise-free softmax's perplexity (the quantizer's own is the one-hot codes' outside training)
        perplexity = self.quantizer.perplexity(code_logits.softmax(-1).flatten(0, 1), mask)

        # contrastive module: L_w + alpha L_d over masked frames
        negatives = sample_negatives(mask, c.num_negatives)
        l_w = contrastive_loss(
            contrastive_logits(self.project_c(context), self.project_q(quantized), mask, negatives, c.temperature)
        )
        num_codes = c.num_groups * c.num_vars
        l_d = (num_codes - perplexity) / num_codes
        # masked-prediction module: cross-entropy of the token ids at masked frames, mean over groups
        logits = self.mlm_logits(hidden).float()
        group_mask = mask[..., None].expand_as(ids)
        l_m = masked_cross_entropy(logits, ids, group_mask)
        loss = c.contrastive_weight * (l_w + c.diversity_weight * l_d) + c.mlm_weight * l_m
        with torch.no_grad():
            acc = (logits.argmax(-1) == ids)[group_mask].float().mean()
        logs = {"loss_w": l_w.detach(), "loss_d": l_d.detach(), "loss_m": l_m.detach(), "mlm_acc": acc,
                "perplexity": perplexity.detach(), "gumbel_temp": tau}  # fmt: skip
        return MethodOutput(loss, logs)

    def backbone_spec(self) -> BackboneSpec:
        return BackboneSpec(
            name="w2v_bert",
            config=self.backbone_config.to_dict(),
            embed_dim=self.backbone.embed_dim,
            input=self.info.backbone_input(),
        )

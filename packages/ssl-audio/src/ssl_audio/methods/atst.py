"""ATST (Li et al., 2023, "Self-supervised Audio Teacher-Student Transformer for Both Clip-level and
Frame-level Tasks").

A transformer student and its exponential-moving-average teacher (BYOL-style: the teacher gets no gradient
and follows the student with the trainer's ``ema_momentum`` schedule) over log-mel patches that span all
mel bands and 4 frames (one token per 40 ms, as ATST-Frame). Two objectives:

- ATST-Clip: two random segments of the clip (``clip_frames`` frames each, here 64 of the 100; the paper
  takes 6 s of 10 s clips), each augmented independently with BYOL-A's mixup and random resize crop; the
  student's clip embedding (mean of its tokens) goes through a projector and a predictor and predicts the
  teacher's projected clip embedding of the other segment, ``2 - 2 cos`` summed over both orderings.
- ATST-Frame: two views of the whole clip by frame-wise augmentation, which keeps the frames aligned
  (mixup with another clip, a random resize crop along frequency only); in the student's view a share of
  the frames is masked in spans (their patch embeddings replaced by a learned mask token before the
  positions are added), and for each *masked* frame the student's projected and predicted output predicts
  the teacher's projected output for the same frame of the other, unmasked view (``2 - 2 cos`` per masked
  frame, averaged, both orderings).

``objective`` selects ``"clip"``, ``"frame"`` or ``"both"`` (the sum). The default is ``"frame"``: the
paper's ATST-Frame is its better model on most clip-level as well as frame-level tasks, and it costs half
of ``"both"``. Augmentations and masks run in ``forward`` on the batch, drawing from torch's global
generator; the pretext hands the waveform on unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from ssl_audio.frontend import standardize
from ssl_audio.info import AudioInfo
from ssl_audio.methods.common import projection_mlp, waveform_item
from ssl_audio.models.spectrogram import SpectrogramViT, SpecViTConfig, spec_backbone_spec
from ssl_audio.transforms.spec import LogMixupExp, RandomResizeCrop, frame_crop
from ssl_core.errors import ConfigError
from ssl_core.losses import negative_cosine
from ssl_core.masking import time_mask
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_core.teacher import EMATeacher

OBJECTIVES = ("clip", "frame", "both")


@dataclass
class ATSTConfig:
    """ATST settings (``--set method.<name>=<value>``).

    Args:
        backbone: the transformer (patches of all 64 mels x 4 frames: 25 tokens per second, 192-d, 4 blocks).
        objective: ``"frame"`` (ATST-Frame, default), ``"clip"`` (ATST-Clip) or ``"both"``.
        clip_frames: frames of each ATST-Clip segment (a multiple of the patch width; 64 = 0.64 s).
        proj_hidden_dim: hidden width of projectors and predictors.
        proj_dim: their output size.
        mixup_ratio: largest share of the other clip in the log-mixup-exp of both objectives (0.4).
        mask_prob: ATST-Frame's span-start probability per frame token (``time_mask``'s ``mask_prob``).
        mask_length: frame tokens per masked span (3 = 120 ms); with 25 tokens and ``mask_prob=0.65`` about
            half of the frames are masked (ATST-Frame masks 65% in blocks on 6 s segments).
    """

    backbone: SpecViTConfig = field(default_factory=lambda: SpecViTConfig(patch_mels=64, patch_frames=4))
    objective: str = "frame"
    clip_frames: int = 64
    proj_hidden_dim: int = 1024
    proj_dim: int = 256
    mixup_ratio: float = 0.4
    mask_prob: float = 0.65
    mask_length: int = 3

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"atst objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.clip_frames % self.backbone.patch_frames:
            raise ConfigError(
                f"clip_frames ({self.clip_frames}) must be a multiple of patch_frames ({self.backbone.patch_frames})"
            )


class ATST(Method):
    """ATST: EMA teacher-student transformer with a clip objective, a masked-frame objective, or both.

    Shapes:
        - batch: ``(B, T)`` waveforms
        - :meth:`embed`: ``(B, T) -> (B, embed_dim)``
    """

    def __init__(self, config: ATSTConfig, info: AudioInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        c = config
        self.backbone = vit = SpectrogramViT(c.backbone)
        frames = vit.logmel.num_frames(info.num_samples) // c.backbone.patch_frames * c.backbone.patch_frames
        if c.objective != "frame" and c.clip_frames > frames:
            raise ConfigError(f"clip_frames ({c.clip_frames}) exceeds the {frames} frames of a clip")
        d = vit.embed_dim
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d))
        nn.init.normal_(self.mask_token, std=0.02)
        parts: dict[str, nn.Module] = {"backbone": vit}
        if c.objective in ("clip", "both"):
            self.clip_projector = projection_mlp(d, c.proj_hidden_dim, c.proj_dim)
            self.clip_predictor = projection_mlp(c.proj_dim, c.proj_hidden_dim, c.proj_dim)
            parts["clip_projector"] = self.clip_projector
        if c.objective in ("frame", "both"):
            self.frame_projector = projection_mlp(d, c.proj_hidden_dim, c.proj_dim)
            self.frame_predictor = projection_mlp(c.proj_dim, c.proj_hidden_dim, c.proj_dim)
            parts["frame_projector"] = self.frame_projector
        self.target = EMATeacher(parts)
        self.mixup = LogMixupExp(c.mixup_ratio)
        self.clip_rrc = RandomResizeCrop()
        self.frame_rrc = RandomResizeCrop(canvas_scale=(1.0, 1.0), time_scale=(1.0, 1.0))  # time stays aligned

    def _parts(self) -> dict[str, nn.Module]:
        return {k: getattr(self, k) for k in ("backbone", "clip_projector", "frame_projector") if hasattr(self, k)}

    def pretext(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return waveform_item

    # --- ATST-Clip ---------------------------------------------------------------------------------
    def clip_views(self, spec: torch.Tensor) -> torch.Tensor:
        """Two augmented random segments per clip, ``(B, M, T) -> (2B, M, clip_frames)``."""
        n = self.config.clip_frames
        views = []
        for _ in range(2):
            starts = torch.randint(0, spec.shape[-1] - n + 1, (spec.shape[0],))
            views.append(standardize(self.clip_rrc(self.mixup(frame_crop(spec, starts, n)))))
        return torch.cat(views)

    def clip_loss(self, spec: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            x = self.clip_views(spec)
        p1, p2 = self.clip_predictor(self.clip_projector(self.backbone.forward_spec(x))).chunk(2)
        with torch.no_grad():
            t = self.target.module
            z1, z2 = t["clip_projector"](t["backbone"].forward_spec(x)).chunk(2)
        return (2 + 2 * negative_cosine(p1, z2)) + (2 + 2 * negative_cosine(p2, z1))

    # --- ATST-Frame --------------------------------------------------------------------------------
    def frame_mask(self, batch: int, n_time: int) -> torch.Tensor:
        """``(B, n_time)`` bool, True on masked frame tokens (span masks, at least one span)."""
        c = self.config
        return time_mask(batch, n_time, c.mask_prob, min(c.mask_length, n_time), min_masks=1)

    def student_frames(self, spec: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Student frame outputs with the masked frames' patches replaced by the mask token: ``(B, n_time, D)``."""
        vit = self.backbone
        n_t, n_f = vit.grid(spec)
        tokens = vit.patch_proj(vit.patchify(spec))  # (B, L, D), time-major
        hidden = mask.repeat_interleave(n_f, dim=1)[..., None]  # (B, L, 1): every band of a masked frame
        tokens = torch.where(hidden, self.mask_token.to(tokens), tokens) + vit.pos_embed(n_t)
        return vit.frames_of_tokens(vit.encode(tokens))

    def frame_loss(self, spec: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Masked-frame prediction, both orderings; ``mask`` ``(2B, n_time)`` for the two student views
        (drawn when ``None``)."""
        with torch.no_grad():
            x = torch.cat([standardize(self.frame_rrc(self.mixup(spec))) for _ in range(2)])  # (2B, M, T)
        n_t = self.backbone.grid(x)[0]
        if mask is None:
            mask = self.frame_mask(len(x), n_t)
        mask = mask.to(x.device)
        h = self.student_frames(x, mask)[mask]  # (N_masked, D): only the masked frames
        p = self.frame_predictor(self.frame_projector(h))
        with torch.no_grad():
            t = self.target.module
            z = t["frame_projector"](t["backbone"].frames_of_tokens(t["backbone"].tokens_spec(x)).flatten(0, 1))
            b = len(x) // 2
            z = z.view(2, b, n_t, -1).flip(0).reshape(2 * b, n_t, -1)  # the other view's frame targets
        return 2 * (2 + 2 * negative_cosine(p, z[mask]))  # mean over both orderings' masked frames, times 2

    def forward(self, batch: torch.Tensor) -> MethodOutput:
        with torch.no_grad():
            spec = self.backbone.spectrogram(batch)
        logs: dict[str, torch.Tensor] = {}
        loss = spec.new_zeros(())
        if self.config.objective in ("clip", "both"):
            logs["loss_clip"] = lc = self.clip_loss(spec)
            loss = loss + lc
        if self.config.objective in ("frame", "both"):
            logs["loss_frame"] = lf = self.frame_loss(spec)
            loss = loss + lf
        return MethodOutput(loss, {k: v.detach() for k, v in logs.items()})

    def after_optimizer_step(self, step: int, values: Mapping[str, float]) -> None:
        self.target.update(self._parts(), values["ema_momentum"])

    def backbone_spec(self) -> BackboneSpec:
        return spec_backbone_spec(self.backbone, self.info.num_samples)

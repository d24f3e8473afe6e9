"""SiT (Atito, Awais and Kittler, 2021, "SiT: Self-supervised vIsion Transformer").

As the paper (arXiv v1) and its first reference code (github.com/Sara-Ahmed/SiT, 2021): two augmented views
of each image are each rotated by a random multiple of 90 degrees and corrupted on random groups of connected
patches (group masked model learning, :mod:`ssl_vision.pretext.corruption`); one ViT encodes the corrupted
view with a rotation token and a contrastive token and is trained on three tasks at once:

- reconstruction: a linear map of each output patch token back to its pixels (the reference's
  ``ConvTranspose2d`` with kernel and stride the patch size), L1 against the clean (rotated) view, on the
  corrupted patches (the reference code's later GMML loss; ``recon_on="all"``: the whole image, as v1);
- rotation: a linear classifier of the rotation token over the 4 rotations, cross entropy;
- contrastive: a projection of the contrastive token, NT-Xent between the two views of each image;

summed with the learned uncertainty weights of Kendall et al. (2018) (``weighting="uncertainty"``, the
paper's; :class:`ssl_core.losses.MultiTaskLoss`), or fixed weights. MultiTaskLoss weighs each task
``0.5 exp(-s) L + 0.5 s`` from ``s = 0``; the reference code weighs ``exp(-a s) L + 0.5 s`` (``a`` = 1 for
the rotation and contrastive losses, 0.5 for L1) from ``s = 1``: the same learned balance, other constants.
As the paper (and unlike the reference's 2022 code, which adds an EMA teacher and drops the rotation task)
there is no teacher: both views' contrastive embeddings come from the trained network.

The contrastive token is the backbone's class token and :meth:`~ssl_core.method.Method.embed` returns it (the
ViT's ``pool="cls"``): the contrastive objective is the one that shapes an image-level embedding, and the
reference's later code (2022) also puts its contrastive head on the class token. The rotation token lives in
this method and is appended after the patches; the class and patch tokens do not attend to it (an attention
mask), so their outputs are exactly those of the exported backbone on the same image, and ``embed`` (the plain
backbone on the clean image) needs no extra token. The rotation token still attends to every token, so the
rotation loss trains the whole encoder. (In the paper every token attends to every other.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.errors import ConfigError
from ssl_core.losses import MultiTaskLoss, masked_l1, nt_xent
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.common import backbone_spec, build_vit_for
from ssl_vision.models.heads import projection_mlp
from ssl_vision.models.vit import ViTConfig, patchify
from ssl_vision.pretext.corruption import CorruptedViews, CorruptionConfig
from ssl_vision.transforms.views import View, ViewConfig

TASKS = ("reconstruction", "rotation", "contrastive")
RECON_ON = ("corrupted", "all")


@dataclass
class SiTConfig:
    """SiT settings (``--set method.<name>=<value>``).

    Args:
        backbone: the ViT (default ViT-tiny with 7-pixel patches, 16 patches of a 28x28 image: MAE's).
        corruption: the group masking (:class:`~ssl_vision.pretext.corruption.CorruptionConfig`).
        views: the augmentation of both views (SimCLR's, as the contrastive task needs).
        proj_layers: linear layers of the contrastive head (1: the paper's linear head to 512 numbers).
        proj_hidden_dim: width of its hidden layers (when ``proj_layers > 1``).
        proj_dim: its output size (512 in the paper).
        temperature: NT-Xent temperature (0.5 in the paper's code, 0.2 in the later code).
        recon_on: where the L1 reconstruction loss is taken: ``corrupted`` patches or ``all`` of the image.
        weighting: ``uncertainty`` (learned, the paper's) or ``fixed``.
        weights: the fixed weights per task (``reconstruction``, ``rotation``, ``contrastive``; 1 each by
            default; ``fixed`` only).
    """

    backbone: ViTConfig = field(default_factory=lambda: ViTConfig(patch_size=7))
    corruption: CorruptionConfig = field(default_factory=CorruptionConfig)
    views: ViewConfig = field(default_factory=ViewConfig)
    proj_layers: int = 1
    proj_hidden_dim: int = 512
    proj_dim: int = 512
    temperature: float = 0.5
    recon_on: str = "corrupted"
    weighting: str = "uncertainty"
    weights: dict[str, float] | None = None

    def __post_init__(self) -> None:
        if self.recon_on not in RECON_ON:
            raise ConfigError(f"method.recon_on must be one of {', '.join(RECON_ON)}, got {self.recon_on!r}")
        if self.proj_layers < 1 or self.proj_dim < 1 or self.proj_hidden_dim < 1:
            raise ConfigError("method.proj_layers, proj_dim and proj_hidden_dim must be positive")
        if self.temperature <= 0:
            raise ConfigError(f"method.temperature must be positive, got {self.temperature}")
        if self.views.size is not None:
            raise ConfigError(
                "SiT reconstructs the whole view with the backbone's patch grid: leave method.views.size unset "
                f"(the image size), got {self.views.size}"
            )


class SiT(Method):
    """SiT: a ViT on group-corrupted, rotated views; pixel reconstruction, rotation and contrastive tasks.

    Shapes:
        - batch: ``{"clean": (2B, C, H, W), "corrupted": (2B, C, H, W), "mask": (2B, L) bool,
          "rotation": (2B,) int64}`` (:class:`~ssl_vision.pretext.corruption.CorruptedViews`)
        - :meth:`encode`: ``(B, C, H, W) -> (B, 1 + L + 1, D)``: the class (contrastive) token, the patches,
          the rotation token
        - :meth:`embed`: ``(B, C, H, W) -> (B, embed_dim)`` (the backbone's class token on the clean image)
    """

    def __init__(self, config: SiTConfig, info: ImageInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        c = config
        self.backbone = build_vit_for(c.backbone, info)
        vit = self.backbone
        d, p = vit.embed_dim, vit.config.patch_size
        self.rot_token = nn.Parameter(torch.zeros(1, 1, d))
        nn.init.trunc_normal_(self.rot_token, std=0.02)
        self.rot_head = nn.Linear(d, 4)
        self.contrastive_head = projection_mlp(d, c.proj_hidden_dim, c.proj_dim, c.proj_layers)
        self.recon_head = nn.Linear(d, p * p * info.channels)
        self.loss_weighting = MultiTaskLoss(TASKS, c.weighting, c.weights)
        n = vit.num_patches + 2
        blocked = torch.zeros(n, n, dtype=torch.bool)
        blocked[:-1, -1] = True  # the class and patch tokens do not attend to the rotation token
        self.register_buffer("attn_mask", blocked, persistent=False)

    def pretext(self) -> CorruptedViews:
        view = View(self.config.views, self.info)
        return CorruptedViews([view, view], self.config.corruption, self.backbone.config.patch_size)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """The class token, the patch tokens and the rotation token after the encoder (see the module's doc)."""
        vit = self.backbone
        tokens = vit.patch_embed(images) + vit.pos_embed  # (B, L, D)
        b = len(tokens)
        x = torch.cat([vit.cls_token.expand(b, -1, -1), tokens, self.rot_token.expand(b, -1, -1)], dim=1)
        for block in vit.blocks:
            x = block(x, src_mask=self.attn_mask)
        return vit.norm(x)

    def task_losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The three unweighted task losses of a batch (see the module's doc)."""
        x = self.encode(batch["corrupted"])  # (2B, 1 + L + 1, D)
        clean, mask = batch["clean"], batch["mask"]
        target = patchify(clean, self.backbone.config.patch_size)  # (2B, L, p * p * C)
        region = mask if self.config.recon_on == "corrupted" else torch.ones_like(mask)
        z_a, z_b = self.contrastive_head(x[:, 0]).chunk(2)
        return {
            "reconstruction": masked_l1(self.recon_head(x[:, 1:-1]), target, region),
            "rotation": F.cross_entropy(self.rot_head(x[:, -1]), batch["rotation"]),
            "contrastive": nt_xent(z_a, z_b, self.config.temperature),
        }

    def forward(self, batch: dict[str, torch.Tensor]) -> MethodOutput:
        losses = self.task_losses(batch)
        total, weights = self.loss_weighting(losses)
        logs = {f"{k}_loss": v.detach() for k, v in losses.items()}
        logs.update({f"{k}_weight": w for k, w in weights.items()})
        return MethodOutput(total, logs)

    def backbone_spec(self) -> BackboneSpec:
        return backbone_spec(self.backbone, self.info)

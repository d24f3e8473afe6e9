"""ViTAutoEnc self-supervised pretraining: MONAI's ``vit_unetr_ssl`` tutorial recipe, with global negatives.

The recipe of MONAI's tutorial ``self_supervised_pretraining/vit_unetr_ssl/ssl_train.ipynb`` (pretraining a
ViT for UNETR fine-tuning, on 96^3 CT patches): every patch gives two corrupted views and the clean patch as
target. Each view is, independently:

1. one of two ``RandCoarseDropout`` (picked with equal chance, as the tutorial's ``OneOf``): 6 holes of
   5-32 voxels filled with uniform noise in the patch's ``[min, max)``, *or* 6 boxes of 20-64 voxels kept and
   everything outside them filled with that noise (``dropout_holes=False``);
2. then, with probability 0.8, ``RandCoarseShuffle``: the voxels of 10 boxes of 8 voxels shuffled within each box.

The tutorial's sizes are for 96^3 patches; :class:`ViTAutoEncSSLConfig` scales them to the training patch
(``reference_size``). MONAI's own array transforms do the corruption, each seeded from one draw of torch's
global generator per sample (MONAI's transforms keep their own ``RandomState``), so the trainer's per-sample
seeding makes the views reproducible.

``monai.networks.nets.ViTAutoEnc`` (the backbone's ``.net``) reconstructs the patch from each view. The loss is
the tutorial's: the L1 between the first view's reconstruction and the clean patch, plus the SimCLR NT-Xent
(``monai.losses.ContrastiveLoss(temperature=0.05)``: cosine similarity, each of the ``2N`` reconstructions'
positive is the other view's, its negatives the other ``2N - 2``) between the two views' *reconstructions*,
flattened to ``(N, D*H*W)``, weighted by the L1 loss itself (``total = l1 + contrastive * l1``, the weight not
detached, as in the tutorial).

Where we differ from the tutorial's code (the objective is the same):

- both views go through the network in one forward pass (``ViTAutoEnc`` has no batch statistics, so this is the
  same function as the tutorial's two passes);
- the contrastive term is :func:`ssl_core.losses.nt_xent` (normalise, then one ``(2N, 2N)`` matrix product),
  which equals ``ContrastiveLoss`` but never builds MONAI's ``(2N, 2N, D*H*W)`` cosine-similarity broadcast
  (906 MB at the tutorial's 8 patches of 96^3);
- under DDP the negatives are every rank's reconstructions (``gather_distributed``, through
  :func:`ssl_core.distributed.gather_with_grad`), and the L1 weight of the contrastive term is the global L1,
  so ``W`` ranks compute exactly the loss and gradients of one process on the global batch. The tutorial's
  multi-GPU script contrasts within each GPU's batch only;
- the ``norm_cross_attn`` LayerNorms MONAI builds in every ``TransformerBlock`` but never uses are frozen
  (by :class:`~ssl_medical.models.monai_nets.MonaiBackbone`), so DDP sees no parameter without a gradient.

Randomness: one seed per sample from torch's global generator (see :class:`CorruptedViews`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ssl_core.distributed import gather_with_grad
from ssl_core.errors import ConfigError, DataError
from ssl_core.losses import nt_xent
from ssl_core.method import BackboneSpec, Method, MethodOutput
from ssl_medical.info import VolumeInfo
from ssl_medical.models.monai_nets import MonaiBackbone, vitautoenc_kwargs

# the patch side the tutorial's corruption sizes are given for (its RandSpatialCropSamplesd roi_size)
TUTORIAL_PATCH = 96


@dataclass
class ViTAutoEncSSLConfig:
    """ViTAutoEnc pretraining settings (``--set method.<name>=<value>``).

    Network (``monai.networks.nets.ViTAutoEnc``; the tutorial's: ``patch_size=16, hidden_size=768, mlp_dim=3072,
    num_layers=12, num_heads=12``, 89 M parameters, on 96^3 patches; the defaults here are a 2.8 M CPU setting):

    Args:
        patch_size: side of the cubic token patches, a square number (MONAI: the decoder up-samples twice by its
            square root), dividing the training patch and the 32^3 probe patch: 4 or 16.
        hidden_size: token width, the embedding size.
        mlp_dim: width of the transformer MLPs.
        num_layers: transformer blocks.
        num_heads: attention heads, dividing ``hidden_size``.
        deconv_chns: channels between the decoder's two transposed convolutions (MONAI's default 16).
        temperature: NT-Xent temperature (tutorial: 0.05).
        contrastive_weight: ``"recon"``: the tutorial's weighting, ``l1 + contrastive * l1`` (the L1 loss as the
            weight, with its gradient); a number ``w``: ``l1 + w * contrastive``.
        recon_both_views: also reconstruct the clean patch from the second view (L1 averaged over both views); the
            tutorial reconstructs from the first view only.
        gather_distributed: under DDP, take negatives from every rank (and weight by the global L1).
        reference_size: the patch side the corruption sizes below are given for; each size is scaled by
            ``patch / reference_size`` per axis (rounded, at least 1). ``None``: the sizes are voxels as given.
        dropout_holes: boxes of either ``RandCoarseDropout`` (tutorial: 6).
        inner_size: ``(min, max)`` side of the boxes filled with noise, the first dropout (tutorial: 5, 32).
        outer_size: ``(min, max)`` side of the boxes kept while everything else is noise, the second dropout
            (tutorial: 20, 64).
        shuffle_prob: probability of ``RandCoarseShuffle`` per view (tutorial: 0.8).
        shuffle_holes: boxes shuffled (tutorial: 10).
        shuffle_size: side of the shuffled boxes (tutorial: 8).
    """

    patch_size: int = 16
    hidden_size: int = 192
    mlp_dim: int = 768
    num_layers: int = 4
    num_heads: int = 4
    deconv_chns: int = 16
    temperature: float = 0.05
    contrastive_weight: float | str = "recon"
    recon_both_views: bool = False
    gather_distributed: bool = True
    reference_size: int | None = TUTORIAL_PATCH
    dropout_holes: int = 6
    inner_size: tuple[int, int] = (5, 32)
    outer_size: tuple[int, int] = (20, 64)
    shuffle_prob: float = 0.8
    shuffle_holes: int = 10
    shuffle_size: int = 8

    def __post_init__(self) -> None:
        self.inner_size = tuple(int(s) for s in self.inner_size)
        self.outer_size = tuple(int(s) for s in self.outer_size)
        if isinstance(self.contrastive_weight, str):
            if self.contrastive_weight != "recon":
                raise ConfigError(
                    f"contrastive_weight must be 'recon' (the tutorial's: weighted by the L1 loss) or a number >= 0, "
                    f"got {self.contrastive_weight!r}"
                )
        elif not float(self.contrastive_weight) >= 0:
            raise ConfigError(f"contrastive_weight must be 'recon' or a number >= 0, got {self.contrastive_weight}")
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be positive, got {self.temperature}")
        root = int(round(self.patch_size**0.5))
        if self.patch_size < 1 or root * root != self.patch_size:
            raise ConfigError(
                f"patch_size must be a square number (ViTAutoEnc up-samples by its square root twice), got "
                f"{self.patch_size}: use 4 or 16"
            )
        for name in ("inner_size", "outer_size"):
            low, high = getattr(self, name) if len(getattr(self, name)) == 2 else (0, -1)
            if not 1 <= low <= high:
                raise ConfigError(f"{name} must be (min, max) with 1 <= min <= max, got {getattr(self, name)}")
        if self.dropout_holes < 1 or self.shuffle_holes < 1 or self.shuffle_size < 1:
            raise ConfigError(
                "dropout_holes, shuffle_holes and shuffle_size must be >= 1, got "
                f"{self.dropout_holes}, {self.shuffle_holes}, {self.shuffle_size}"
            )
        if not 0 <= self.shuffle_prob <= 1:
            raise ConfigError(f"shuffle_prob must be in [0, 1], got {self.shuffle_prob}")
        if self.reference_size is not None and self.reference_size < 1:
            raise ConfigError(f"reference_size must be None or >= 1, got {self.reference_size}")


def _plain(x) -> torch.Tensor:
    """A plain float32 tensor from what a MONAI transform returns (a ``MetaTensor``, a tensor or an array)."""
    t = x.as_subclass(torch.Tensor) if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t.float().contiguous()


class CorruptedViews:
    """The tutorial's pretext: a patch ``(C, D, H, W)`` -> ``{"view1", "view2", "target"}``, each ``(C, D, H, W)``.

    Each view: one of the two ``monai.transforms.RandCoarseDropout`` (equal chance), then ``RandCoarseShuffle`` with
    probability ``shuffle_prob``. All draws come from one ``numpy.random.RandomState`` per sample, seeded by one draw
    of torch's global generator, and given to the MONAI transforms with ``set_random_state``.

    Args:
        patch_size: the training patch ``(D, H, W)`` (to check samples; corruption sizes are already in voxels).
        holes: boxes of either dropout.
        inner_size: ``(min, max)`` voxels per axis of the noise-filled boxes (``dropout_holes=True``).
        outer_size: ``(min, max)`` voxels per axis of the kept boxes (``dropout_holes=False``).
        shuffle_prob: probability of the shuffle.
        shuffle_holes: shuffled boxes.
        shuffle_size: voxels per axis of a shuffled box.
    """

    def __init__(
        self,
        patch_size: tuple[int, int, int],
        holes: int,
        inner_size: tuple[tuple[int, ...], tuple[int, ...]],
        outer_size: tuple[tuple[int, ...], tuple[int, ...]],
        shuffle_prob: float,
        shuffle_holes: int,
        shuffle_size: tuple[int, ...],
    ) -> None:
        from monai.transforms import RandCoarseDropout, RandCoarseShuffle

        self.patch_size = tuple(patch_size)
        self.dropouts = [
            RandCoarseDropout(
                holes=holes, spatial_size=inner_size[0], max_spatial_size=inner_size[1], dropout_holes=True, prob=1.0
            ),
            RandCoarseDropout(
                holes=holes, spatial_size=outer_size[0], max_spatial_size=outer_size[1], dropout_holes=False, prob=1.0
            ),
        ]
        self.shuffle = RandCoarseShuffle(holes=shuffle_holes, spatial_size=shuffle_size, prob=shuffle_prob)

    def corrupt(self, patch: np.ndarray, rng: np.random.RandomState) -> torch.Tensor:
        """One view of ``patch`` (a ``(C, D, H, W)`` array, left unchanged) with the draws of ``rng``."""
        dropout = self.dropouts[rng.randint(len(self.dropouts))]
        dropout.set_random_state(state=rng)
        self.shuffle.set_random_state(state=rng)
        return _plain(self.shuffle(dropout(patch.copy())))

    def __call__(self, patch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Two corrupted views and the clean target of one patch."""
        if not isinstance(patch, torch.Tensor) or patch.ndim != 4 or tuple(patch.shape[1:]) != self.patch_size:
            shape = tuple(patch.shape) if hasattr(patch, "shape") else type(patch).__name__
            raise DataError(
                f"ViTAutoEnc pretraining expects patches (C, {', '.join(map(str, self.patch_size))}) as tensors, got "
                f"{shape}: set data.patch_size to the method's patch or give (C, D, H, W) volumes"
            )
        target = patch.detach().cpu().float().contiguous()
        rng = np.random.RandomState(int(torch.randint(0, 2**31 - 1, ())))
        array = target.numpy()
        return {"view1": self.corrupt(array, rng), "view2": self.corrupt(array, rng), "target": target}


def scaled(size: int, patch_size: tuple[int, int, int], reference: int | None) -> tuple[int, ...]:
    """``size`` voxels of a ``reference``^3 patch, per axis of ``patch_size`` (rounded, at least 1; ``reference``
    ``None``: ``size`` on every axis)."""
    if reference is None:
        return (int(size),) * len(patch_size)
    return tuple(max(1, int(round(size * p / reference))) for p in patch_size)


def recon_contrastive_loss(
    recon_1: torch.Tensor,
    recon_2: torch.Tensor,
    target: torch.Tensor,
    temperature: float = 0.05,
    contrastive_weight: float | str = "recon",
    recon_both_views: bool = False,
    gather_distributed: bool = False,
) -> dict[str, torch.Tensor]:
    """The tutorial's objective on the two views' reconstructions.

    ``l1 = mean |recon_1 - target|`` (also ``recon_2`` averaged in, with ``recon_both_views``), ``cl`` =
    :func:`ssl_core.losses.nt_xent` of the flattened reconstructions (MONAI's ``ContrastiveLoss``), and
    ``loss = l1 + w * cl`` with ``w = l1`` (``"recon"``) or a number. With ``gather_distributed`` the negatives
    come from every rank and ``w = "recon"`` uses the mean L1 of all ranks, so the mean of the ranks' losses (and,
    averaged by DDP, their gradients) is that of one process on the global batch.

    Args:
        recon_1, recon_2: reconstructions of the two views.
        target: the clean patches.
        temperature: NT-Xent temperature.
        contrastive_weight: ``"recon"`` or a number.
        recon_both_views: the L1 of both views.
        gather_distributed: global negatives and weight under DDP.

    Shapes:
        - recon_1, recon_2, target: ``(N, C, D, H, W)``
        - output: ``{"loss": scalar, "l1": scalar, "contrastive": scalar}`` (the last two detached, for logs)
    """
    if recon_1.shape != recon_2.shape or recon_1.shape != target.shape:
        raise ValueError(
            f"reconstructions and target must have one shape, got {tuple(recon_1.shape)}, {tuple(recon_2.shape)} "
            f"and {tuple(target.shape)}"
        )
    l1 = F.l1_loss(recon_1, target)
    if recon_both_views:
        l1 = 0.5 * (l1 + F.l1_loss(recon_2, target))
    cl = nt_xent(recon_1.flatten(1), recon_2.flatten(1), temperature, gather_distributed=gather_distributed)
    if contrastive_weight == "recon":
        weight = gather_with_grad(l1.reshape(1)).mean() if gather_distributed else l1
    else:
        weight = float(contrastive_weight)
    return {"loss": l1 + weight * cl, "l1": l1.detach(), "contrastive": cl.detach()}


class ViTAutoEncSSL(Method):
    """MONAI's ViTAutoEnc self-supervised recipe: reconstruct each corrupted view, contrast the reconstructions.

    The backbone is :class:`~ssl_medical.models.monai_nets.MonaiBackbone` (``"ViTAutoEnc"``): its ``.net`` is the
    MONAI network trained here (and exported for MONAI users), its ``forward`` the pooled encoder tokens the probes
    use. The network takes the training patch size only; the backbone's encoder also takes the 32^3 probe patches.

    Shapes:
        - batch: ``{"view1", "view2", "target"}``, each ``(B, C, D, H, W)`` (see :class:`CorruptedViews`)
        - :meth:`embed`: ``(B, C, D', H', W') -> (B, hidden_size)``
    """

    def __init__(self, config: ViTAutoEncSSLConfig, info: VolumeInfo) -> None:
        super().__init__()
        self.config, self.info = config, info
        patch = tuple(info.patch_size)
        if any(s % config.patch_size for s in patch):
            raise ConfigError(
                f"the training patch {patch} must be a multiple of method.patch_size={config.patch_size} on every "
                "axis: change data.patch_size or method.patch_size"
            )
        self.backbone = MonaiBackbone(
            "ViTAutoEnc",
            vitautoenc_kwargs(
                img_size=patch,
                patch_size=config.patch_size,
                hidden_size=config.hidden_size,
                mlp_dim=config.mlp_dim,
                num_layers=config.num_layers,
                num_heads=config.num_heads,
                in_channels=info.channels,
                out_channels=info.channels,
                deconv_chns=config.deconv_chns,
            ),
        )

    def pretext(self) -> CorruptedViews:
        """Two corrupted views and the target per patch (:class:`CorruptedViews`), corruption sizes scaled from
        the tutorial's 96^3 to the training patch."""
        c, patch = self.config, tuple(self.info.patch_size)

        def size(s: int) -> tuple[int, ...]:
            return scaled(s, patch, c.reference_size)

        return CorruptedViews(
            patch,
            c.dropout_holes,
            (size(c.inner_size[0]), size(c.inner_size[1])),
            (size(c.outer_size[0]), size(c.outer_size[1])),
            c.shuffle_prob,
            c.shuffle_holes,
            size(c.shuffle_size),
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> MethodOutput:
        """The tutorial's loss (:func:`recon_contrastive_loss`), both views in one pass of the network."""
        v1, v2, target = batch["view1"], batch["view2"], batch["target"]
        if v1.shape != v2.shape or v1.shape != target.shape or v1.ndim != 5:
            raise DataError(
                f"view1, view2 and target must be batches (B, C, D, H, W) of one shape, got {tuple(v1.shape)}, "
                f"{tuple(v2.shape)}, {tuple(target.shape)}: build batches with this method's pretext"
            )
        n = v1.shape[0]
        recon, _ = self.backbone.net(torch.cat([v1, v2]))
        c = self.config
        out = recon_contrastive_loss(
            recon[:n],
            recon[n:],
            target,
            c.temperature,
            c.contrastive_weight,
            c.recon_both_views,
            c.gather_distributed,
        )
        return MethodOutput(out["loss"], {"l1": out["l1"], "contrastive": out["contrastive"]})

    def backbone_spec(self) -> BackboneSpec:
        """The backbone's spec: builder ``"monai"`` (:func:`~ssl_medical.models.monai_nets.build_monai_backbone`)."""
        return BackboneSpec(
            name="monai",
            config=self.backbone.config(),
            embed_dim=self.backbone.embed_dim,
            input=self.info.backbone_input(),
        )

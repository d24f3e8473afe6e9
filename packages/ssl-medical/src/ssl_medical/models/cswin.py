"""A 3-D CSwin UNet (Li et al., 2023, "Cross-Shaped Windows Transformer with Self-supervised Pretraining for
Clinically Significant Prostate Cancer Detection in Bi-parametric MRI"), small enough for CPU pretraining.

Encoder: a strided convolution cuts the volume into ``patch_size^3`` patches (``embed_dim`` channels); then stages
of CSwin blocks, with a patch merging (3^3 convolution, stride 2, channels doubled, LayerNorm; CSwin's
``Merge_Block``) between stages. A CSwin block is pre-norm cross-shaped window attention plus an MLP, each with a
residual. Cross-shaped window attention (Dong et al., 2022, CSWin Transformer) in 3-D: the channels and heads are
split into three equal groups; group ``a`` (``a`` = D, H, W) attends within stripes that run the full length of
axis ``a`` and are ``stripe_width`` voxels wide along the two other axes, so the three groups together see a cross
of three orthogonal bars through every voxel. A stripe width larger than the map (or not dividing it) is lowered to
the largest divisor of the map side that fits, so the coarsest stage attends globally, as CSwin's last stage does.
Positions enter through LePE (CSwin's locally-enhanced positional encoding): a depthwise 3^3 convolution of the
values inside each stripe, added to the attention output.

Decoder (for segmentation): a convolutional UNet decoder: from the coarsest stage, a transposed convolution
(stride 2) per stage, concatenated with the encoder map of that stage, and a 3^3 convolution block (InstanceNorm,
LeakyReLU); a last transposed convolution back to the input resolution joins a convolution stem on the input, and a
1^3 convolution gives the classes.

``forward(x)`` is the embedding: the spatial mean of every stage's map (normalised over channels without
parameters, as MONAI's ``swinViT(x, normalize=True)``), concatenated.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.errors import ConfigError


def fit_stripe(size: int, width: int) -> int:
    """The stripe width used on a map side: the largest divisor of ``size`` that is at most ``width``."""
    return max(w for w in range(1, min(size, width) + 1) if size % w == 0)


def stripe_window(size: tuple[int, int, int], axis: int, width: int) -> tuple[int, int, int]:
    """The window of the group attending along ``axis``: the full side there, the fitted stripe width elsewhere."""
    return tuple(s if a == axis else fit_stripe(s, width) for a, s in enumerate(size))


def window_partition(x: torch.Tensor, window: tuple[int, int, int]) -> torch.Tensor:
    """Cut a map into non-overlapping windows.

    Shapes:
        - x: ``(B, C, D, H, W)`` with each side divisible by the window's
        - output: ``(B * n_windows, wd * wh * ww, C)``, windows in (D, H, W) raster order per sample
    """
    b, c, d, h, w = x.shape
    wd, wh, ww = window
    x = x.reshape(b, c, d // wd, wd, h // wh, wh, w // ww, ww)
    return x.permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(-1, wd * wh * ww, c)


def window_merge(windows: torch.Tensor, window: tuple[int, int, int], size: tuple[int, int, int]) -> torch.Tensor:
    """Undo :func:`window_partition`.

    Shapes:
        - windows: ``(B * n_windows, wd * wh * ww, C)``; output: ``(B, C, D, H, W)``
    """
    d, h, w = size
    wd, wh, ww = window
    c = windows.shape[-1]
    x = windows.reshape(-1, d // wd, h // wh, w // ww, wd, wh, ww, c)
    return x.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(-1, c, d, h, w)


class CrossShapedAttention(nn.Module):
    """3-D cross-shaped window self-attention with LePE.

    Args:
        dim: channels (divisible by ``num_heads``).
        num_heads: heads (divisible by 3: a third attends along each axis).
        stripe_width: stripe width ``sw`` (voxels across a stripe).
        lepe: add CSwin's locally-enhanced positional encoding.

    Shapes:
        - x: ``(B, N, dim)`` tokens of a ``(D, H, W)`` map in raster order, ``N = D * H * W``; output: the same
    """

    def __init__(self, dim: int, num_heads: int, stripe_width: int, lepe: bool = True) -> None:
        super().__init__()
        if num_heads % 3 or dim % num_heads:
            raise ConfigError(
                f"cross-shaped attention splits heads into 3 axis groups: num_heads ({num_heads}) must be a "
                f"multiple of 3 and the width ({dim}) a multiple of num_heads"
            )
        if stripe_width < 1:
            raise ConfigError(f"stripe_width must be >= 1, got {stripe_width}")
        self.dim, self.num_heads, self.stripe_width = dim, num_heads, stripe_width
        self.group_dim, self.group_heads = dim // 3, num_heads // 3
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.lepe = None
        if lepe:
            g = self.group_dim
            self.lepe = nn.ModuleList([nn.Conv3d(g, g, 3, padding=1, groups=g) for _ in range(3)])

    def branch(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, size: tuple[int, int, int], axis: int
    ) -> torch.Tensor:
        """Attention of one axis group within its stripes.

        Shapes:
            - q, k, v: ``(B, group_dim, D, H, W)``; output: ``(B, group_dim, D, H, W)``
        """
        window = stripe_window(size, axis, self.stripe_width)
        qw, kw, vw = (window_partition(t, window) for t in (q, k, v))  # (Bw, L, g)
        bw, length, g = qw.shape
        heads = [t.reshape(bw, length, self.group_heads, -1).transpose(1, 2) for t in (qw, kw, vw)]
        out = F.scaled_dot_product_attention(*heads).transpose(1, 2).reshape(bw, length, g)
        if self.lepe is not None:
            vol = vw.transpose(1, 2).reshape(bw, g, *window)
            out = out + self.lepe[axis](vol).reshape(bw, g, length).transpose(1, 2)
        return window_merge(out, window, size)

    def forward(self, x: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
        """Attend (see the class docstring for shapes)."""
        b, n, c = x.shape
        if n != size[0] * size[1] * size[2]:
            raise ValueError(f"{n} tokens do not make a {size} map")
        qkv = self.qkv(x).transpose(1, 2).reshape(b, 3, c, *size)
        g = self.group_dim
        outs = [self.branch(*(qkv[:, i, a * g : (a + 1) * g] for i in range(3)), size=size, axis=a) for a in range(3)]
        return self.proj(torch.cat(outs, dim=1).flatten(2).transpose(1, 2))


class CSwinBlock(nn.Module):
    """Pre-norm block: ``x + attn(LN(x))``, then ``x + MLP(LN(x))``.

    Args:
        dim: channels.
        num_heads: heads (multiple of 3).
        stripe_width: stripe width.
        mlp_ratio: MLP hidden width over ``dim``.
        lepe: use LePE.

    Shapes:
        - x: ``(B, N, dim)``; output: the same
    """

    def __init__(self, dim: int, num_heads: int, stripe_width: int, mlp_ratio: float = 4.0, lepe: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = CrossShapedAttention(dim, num_heads, stripe_width, lepe)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
        """Apply the block to the tokens of a ``size`` map."""
        x = x + self.attn(self.norm1(x), size)
        return x + self.mlp(self.norm2(x))


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of a ``(B, C, D, H, W)`` map (``affine=False``: no parameters)."""

    def __init__(self, dim: int, affine: bool = True) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise every voxel's channel vector."""
        return self.norm(x.movedim(1, -1)).movedim(-1, 1)


def conv_block(cin: int, cout: int) -> nn.Sequential:
    """3^3 convolution, InstanceNorm (affine), LeakyReLU."""
    return nn.Sequential(
        nn.Conv3d(cin, cout, 3, padding=1), nn.InstanceNorm3d(cout, affine=True), nn.LeakyReLU(0.01, inplace=True)
    )


@dataclass
class CSwinUNetConfig:
    """A CSwin UNet's shape (``--set method.backbone.<name>=<value>``).

    Args:
        in_channels: image channels.
        out_channels: segmentation classes of the decoder's head.
        embed_dim: channels of the first stage (doubled at every merging; each stage's width must divide by its
            heads, which are multiples of 3).
        depths: CSwin blocks per stage (the number of stages is its length).
        num_heads: heads per stage (multiples of 3).
        stripe_width: stripe width per stage (CSwin: 1, 2, 7, 7 on 2-D maps of 56, 28, 14, 7).
        patch_size: side of the patch embedding (the first map is the input side over this).
        mlp_ratio: MLP width over the block width.
        lepe: LePE positional encoding in the attention.
    """

    in_channels: int = 1
    out_channels: int = 1
    embed_dim: int = 24
    depths: tuple[int, ...] = (1, 1, 1)
    num_heads: tuple[int, ...] = (3, 6, 12)
    stripe_width: tuple[int, ...] = (2, 4, 4)
    patch_size: int = 2
    mlp_ratio: float = 2.0
    lepe: bool = True
    dims: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.depths, self.num_heads = tuple(self.depths), tuple(self.num_heads)
        self.stripe_width = tuple(self.stripe_width)
        if not self.depths or not len(self.depths) == len(self.num_heads) == len(self.stripe_width):
            raise ConfigError(
                "depths, num_heads and stripe_width need one entry per stage, got "
                f"{self.depths}, {self.num_heads}, {self.stripe_width}"
            )
        if min(self.depths) < 1 or self.patch_size < 1 or self.embed_dim < 1:
            raise ConfigError("depths, patch_size and embed_dim must be >= 1")
        self.dims = tuple(self.embed_dim * 2**i for i in range(len(self.depths)))
        for i, (d, h) in enumerate(zip(self.dims, self.num_heads, strict=True)):
            if h % 3 or d % h:
                raise ConfigError(
                    f"stage {i}: {h} heads on width {d}: heads must be a multiple of 3 (one third per axis) and "
                    "divide the width (embed_dim * 2^stage)"
                )

    @property
    def reduction(self) -> int:
        """Input side over the coarsest map side."""
        return self.patch_size * 2 ** (len(self.depths) - 1)

    def to_dict(self) -> dict:
        """The JSON-serialisable constructor arguments."""
        out = asdict(self)
        out.pop("dims")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


class CSwinUNet(nn.Module):
    """A CSwin transformer encoder with a convolutional UNet decoder.

    Args:
        config: the shape (:class:`CSwinUNetConfig`).

    Shapes:
        - forward: ``(B, in_channels, D, H, W) -> (B, embed_dim)`` with ``embed_dim = sum(stage widths)``; every
          side a multiple of ``config.reduction``
        - features: the list of stage maps, fine to coarse, ``(B, width_i, D / (p 2^i), ...)``
        - segment: ``(B, in_channels, D, H, W) -> (B, out_channels, D, H, W)``
    """

    def __init__(self, config: CSwinUNetConfig | None = None) -> None:
        super().__init__()
        c = self.cfg = config or CSwinUNetConfig()
        dims = c.dims
        self.patch_embed = nn.Conv3d(c.in_channels, dims[0], c.patch_size, stride=c.patch_size)
        self.embed_norm = ChannelNorm(dims[0])
        self.stages = nn.ModuleList(
            nn.ModuleList(CSwinBlock(d, h, s, c.mlp_ratio, c.lepe) for _ in range(n))
            for d, h, s, n in zip(dims, c.num_heads, c.stripe_width, c.depths, strict=True)
        )
        self.merges = nn.ModuleList(
            nn.Sequential(nn.Conv3d(a, b, 3, stride=2, padding=1), ChannelNorm(b))
            for a, b in zip(dims, dims[1:], strict=False)
        )
        # parameter-free, as the normalised outputs of MONAI's swinViT: every trained parameter serves the trunk
        self.stage_norms = nn.ModuleList(ChannelNorm(d, affine=False) for d in dims)
        # decoder
        self.stem = conv_block(c.in_channels, dims[0])
        self.ups = nn.ModuleList(nn.ConvTranspose3d(b, a, 2, stride=2) for a, b in zip(dims, dims[1:], strict=False))
        self.fuse = nn.ModuleList(conv_block(2 * a, a) for a in dims[:-1])
        self.final_up = nn.ConvTranspose3d(dims[0], dims[0], c.patch_size, stride=c.patch_size)
        self.final_fuse = conv_block(2 * dims[0], dims[0])
        self.head = nn.Conv3d(dims[0], c.out_channels, 1)

    @property
    def embed_dim(self) -> int:
        """Size of :meth:`forward`'s embedding."""
        return sum(self.cfg.dims)

    def encoder_parameters(self) -> list[nn.Parameter]:
        """The parameters :meth:`features` uses (the part the pretext tasks train)."""
        mods = [self.patch_embed, self.embed_norm, self.stages, self.merges, self.stage_norms]
        return [p for m in mods for p in m.parameters()]

    def decoder_modules(self) -> list[nn.Module]:
        """The modules only :meth:`segment` uses."""
        return [self.stem, self.ups, self.fuse, self.final_up, self.final_fuse, self.head]

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's stage maps, fine to coarse (each normalised over channels, without parameters)."""
        r = self.cfg.reduction
        if x.ndim != 5 or x.shape[1] != self.cfg.in_channels or any(s % r for s in x.shape[2:]):
            raise ValueError(
                f"the CSwin UNet takes (B, {self.cfg.in_channels}, D, H, W) with every side a multiple of {r} "
                f"(patch_size * 2^(stages - 1)), got {tuple(x.shape)}"
            )
        h = self.embed_norm(self.patch_embed(x))
        out = []
        for i, blocks in enumerate(self.stages):
            if i:
                h = self.merges[i - 1](h)
            b, ch, *size = h.shape
            size = tuple(size)
            t = h.flatten(2).transpose(1, 2)
            for blk in blocks:
                t = blk(t, size)
            h = t.transpose(1, 2).reshape(b, ch, *size)
            out.append(self.stage_norms[i](h))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding: every stage map averaged over space, concatenated."""
        return torch.cat([f.mean(dim=(2, 3, 4)) for f in self.features(x)], dim=1)

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        """Dense logits through the UNet decoder."""
        feats = self.features(x)
        h = feats[-1]
        for i in range(len(feats) - 2, -1, -1):
            h = self.fuse[i](torch.cat([self.ups[i](h), feats[i]], dim=1))
        h = self.final_fuse(torch.cat([self.final_up(h), self.stem(x)], dim=1))
        return self.head(h)

    #: fine-tuning the segmenter is costly on a CPU (stripe attention): the few-shot segmentation probe gives it
    #: fewer, smaller steps (see :mod:`ssl_medical.probes.segmentation`)
    heavy_finetune = True

    def segmenter(self, num_classes: int) -> CSwinSegmenter:
        """A new network for dense fine-tuning: a copy of this one (encoder and decoder weights) with a new head of
        ``num_classes`` outputs, every parameter trainable."""
        net = copy.deepcopy(self)
        net.cfg = replace(net.cfg, out_channels=num_classes)
        net.head = nn.Conv3d(self.cfg.dims[0], num_classes, 1)
        net.requires_grad_(True)
        return CSwinSegmenter(net)

    def config(self) -> dict:
        """Constructor arguments for :func:`build_cswin_unet`."""
        return self.cfg.to_dict()


class CSwinSegmenter(nn.Module):
    """A CSwin UNet used for segmentation: ``(B, C, D, H, W) -> (B, num_classes, D, H, W)``.

    Args:
        net: the network whose :meth:`CSwinUNet.segment` this calls.
    """

    def __init__(self, net: CSwinUNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Dense logits."""
        return self.net.segment(x)


def build_cswin_unet(config: dict) -> CSwinUNet:
    """Rebuild a CSwin UNet from :meth:`CSwinUNet.config` (the export's backbone builder)."""
    return CSwinUNet(CSwinUNetConfig(**config))

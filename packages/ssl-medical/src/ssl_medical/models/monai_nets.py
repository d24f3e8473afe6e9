"""MONAI's volume networks (UNet, SwinUNETR, ViTAutoEnc) behind one backbone wrapper.

:class:`MonaiBackbone` holds the MONAI network itself as ``.net`` (so its state dict is the one MONAI users load,
see :mod:`ssl_medical.export`) and adds what the core and the probes need:

- ``features(x)``: the encoder's feature maps, fine to coarse;
- ``forward(x)``: every map global-average pooled and concatenated, ``(B, embed_dim)``;
- ``segmenter(num_classes)``: a new network of the same class for dense fine-tuning, with this one's weights.

The feature maps, for an input ``(B, C, D, H, W)``:

- ``UNet``: the output of every down-path block and of the bottom block, e.g. with ``channels=(16, 32, 64, 128)``,
  ``strides=(2, 2, 2)`` on 32^3: 16 x 16^3, 32 x 8^3, 64 x 4^3, 128 x 4^3; ``embed_dim = sum(channels)`` (240).
  These are exactly the tensors the full ``net(x)`` computes on its way down (it concatenates each with the
  decoder's output), computed without the decoder.
- ``SwinUNETR``: the five hidden states of ``net.swinViT(x, normalize=net.normalize)``, at 1/2 ... 1/32 of the input
  with ``feature_size * (1, 2, 4, 8, 16)`` channels; ``embed_dim = 31 * feature_size`` (372 for 12). The encoder
  alone runs on 32^3 (the region probe), in training too; the full ``net(x)`` needs sizes divisible by 32 and at
  least 64^3, in evaluation too (its instance norm refuses the 1^3 bottleneck of a 32^3 input).
- ``ViTAutoEnc``: the normalised tokens of the encoder (``patch_embedding -> blocks -> norm``) as one map
  ``(B, hidden_size, D/p, H/p, W/p)``; ``embed_dim = hidden_size``. An input of another size than ``img_size``
  (the 32^3 probe of a network trained on 64^3) gets the learned position embeddings resized trilinearly to its
  token grid; the full ``net(x)`` (the reconstruction) only takes ``img_size``. The ``norm_cross_attn`` layers MONAI
  creates in every block but never calls (no cross-attention) are frozen (``requires_grad=False``), so DDP and the
  gradient checks see no unused trainable parameter; they stay in the state dict.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.errors import ConfigError, DataError

SUPPORTED = ("UNet", "SwinUNETR", "ViTAutoEnc")


def unet_kwargs(
    out_channels: int = 1,
    channels: tuple[int, ...] = (16, 32, 64, 128),
    strides: tuple[int, ...] = (2, 2, 2),
    num_res_units: int = 1,
    in_channels: int = 1,
    **extra: Any,
) -> dict[str, Any]:
    """Keyword arguments of a small 3-D ``monai.networks.nets.UNet`` (0.60 M parameters with the defaults; about 0.04 s
    per training step of a 64^3 batch of 2 on 2 quiet CPU cores).

    Args:
        out_channels: output channels of the full network (1: a reconstruction).
        channels: feature channels per level, the last one the bottom block's.
        strides: down-sampling stride per level (one fewer than ``channels``).
        num_res_units: residual units per block.
        in_channels: image channels.
        extra: further ``UNet`` arguments (``norm``, ``act``, ``dropout``, ...), JSON values only.
    """
    return {
        "spatial_dims": 3,
        "in_channels": in_channels,
        "out_channels": out_channels,
        "channels": list(channels),
        "strides": list(strides),
        "num_res_units": num_res_units,
        **extra,
    }


def patch_unet(
    patch_size: tuple[int, ...],
    out_channels: int,
    channels: tuple[int, ...],
    strides: tuple[int, ...],
    num_res_units: int,
    in_channels: int = 1,
) -> MonaiBackbone:
    """The dense-pretext UNet of a method (Volume Fusion, Models Genesis): a :class:`MonaiBackbone` of
    :func:`unet_kwargs`, after checking that the training patch fits it.

    Raises:
        ConfigError: a patch side that is not a multiple of the product of ``strides`` (the decoder could not
            restore the input's size), naming both and the settings to change.
    """
    step = int(np.prod(strides))
    if any(int(s) % step for s in patch_size):
        raise ConfigError(
            f"patch size {tuple(patch_size)} must be a multiple of the UNet's total stride {step}: change "
            "data.patch_size or method.strides"
        )
    kwargs = unet_kwargs(out_channels, channels, strides, num_res_units, in_channels)
    return MonaiBackbone("UNet", kwargs)


def swinunetr_kwargs(
    out_channels: int = 1,
    feature_size: int = 12,
    depths: tuple[int, ...] = (2, 2, 2, 2),
    num_heads: tuple[int, ...] = (3, 6, 12, 24),
    in_channels: int = 1,
    **extra: Any,
) -> dict[str, Any]:
    """Keyword arguments of a 3-D ``monai.networks.nets.SwinUNETR`` (MONAI 1.6: no ``img_size``).

    ``feature_size=12`` is the CPU setting (4.1 M parameters, about 2 s per training step of one 64^3 patch on 2
    quiet cores); the paper (Tang et al. 2022) and the MONAI tutorial use 48 (62 M).

    Args:
        out_channels: output channels of the full network.
        feature_size: channels of the first stage, a multiple of 12.
        depths: Swin blocks per stage.
        num_heads: attention heads per stage.
        in_channels: image channels.
        extra: further ``SwinUNETR`` arguments (``window_size``, ``use_v2``, ...), JSON values only.
    """
    if feature_size % 12:
        raise ConfigError(f"SwinUNETR feature_size must be a multiple of 12, got {feature_size}: use 12, 24 or 48")
    return {
        "in_channels": in_channels,
        "out_channels": out_channels,
        "feature_size": feature_size,
        "depths": list(depths),
        "num_heads": list(num_heads),
        "spatial_dims": 3,
        **extra,
    }


def vitautoenc_kwargs(
    img_size: int | tuple[int, int, int],
    patch_size: int = 16,
    hidden_size: int = 192,
    mlp_dim: int = 768,
    num_layers: int = 4,
    num_heads: int = 4,
    out_channels: int = 1,
    in_channels: int = 1,
    **extra: Any,
) -> dict[str, Any]:
    """Keyword arguments of a 3-D ``monai.networks.nets.ViTAutoEnc``.

    The defaults are a small CPU setting (2.8 M parameters, most in the transposed-convolution decoder); the
    MONAI self-supervised tutorial (the paper setting, a ViT-B) uses ``hidden_size=768, mlp_dim=3072,
    num_layers=12, num_heads=12`` with ``patch_size=16`` (89 M parameters, 0.6 s per step of a 64^3 batch of 2 on
    2 quiet cores).

    Args:
        img_size: the training patch size (the full network only takes this size).
        patch_size: side of the cubic token patches, a square number (MONAI's rule: 4 or 16) dividing
            ``img_size`` and the probe's 32^3.
        hidden_size: token width (``embed_dim``).
        mlp_dim: width of the transformer MLPs.
        num_layers: transformer blocks.
        num_heads: attention heads, dividing ``hidden_size``.
        out_channels: output channels of the reconstruction.
        in_channels: image channels.
        extra: further ``ViTAutoEnc`` arguments (``deconv_chns``, ``dropout_rate``, ...), JSON values only.
    """
    size = [int(img_size)] * 3 if isinstance(img_size, int) else [int(s) for s in img_size]
    if int(patch_size**0.5 + 0.5) ** 2 != patch_size:
        raise ConfigError(
            f"ViTAutoEnc patch_size must be a square number (its decoder up-samples twice by its root), got "
            f"{patch_size}: use 4 or 16"
        )
    if any(s % patch_size for s in size):
        raise ConfigError(f"ViTAutoEnc patch_size {patch_size} must divide img_size {size}: pick a divisor")
    if hidden_size % num_heads:
        raise ConfigError(f"ViTAutoEnc hidden_size {hidden_size} must be a multiple of num_heads {num_heads}")
    return {
        "in_channels": in_channels,
        "img_size": size,
        "patch_size": [patch_size] * 3,
        "out_channels": out_channels,
        "hidden_size": hidden_size,
        "mlp_dim": mlp_dim,
        "num_layers": num_layers,
        "num_heads": num_heads,
        "spatial_dims": 3,
        **extra,
    }


def _jsonable(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` as JSON would give them back (tuples become lists), refusing values JSON cannot hold."""
    try:
        return json.loads(json.dumps(kwargs))
    except TypeError as e:
        raise ConfigError(
            f"MONAI network kwargs must be JSON values to be exported ({e}): pass names ('INSTANCE'), numbers, lists"
        ) from None


def _unet_down_path(net: nn.Module) -> list[nn.Module]:
    """The down-path blocks of a MONAI ``UNet``, top to bottom, ending with the bottom block.

    MONAI nests the network as ``Sequential(down, SkipConnection(Sequential(down, SkipConnection(...), up)), up)``
    with the bottom block as the innermost ``SkipConnection``'s submodule.
    """
    from monai.networks.layers import SkipConnection

    blocks: list[nn.Module] = []
    m = net.model
    while isinstance(m, nn.Sequential) and len(m) == 3 and isinstance(m[1], SkipConnection):
        blocks.append(m[0])
        m = m[1].submodule
    if not blocks:
        raise ConfigError("unexpected MONAI UNet structure: no down/skip/up blocks found (MONAI version changed?)")
    blocks.append(m)
    return blocks


class MonaiBackbone(nn.Module):
    """A MONAI volume network as a backbone: pooled encoder features for the probes, the network for the methods.

    Args:
        monai_class: ``"UNet"``, ``"SwinUNETR"`` or ``"ViTAutoEnc"`` (a class of ``monai.networks.nets``).
        kwargs: its constructor arguments, JSON values (see :func:`unet_kwargs`, :func:`swinunetr_kwargs`,
            :func:`vitautoenc_kwargs`).

    Shapes:
        ``forward``: ``(B, in_channels, D, H, W) -> (B, embed_dim)``; ``features``: a list of
        ``(B, C_i, D_i, H_i, W_i)``, fine to coarse; ``net(x)``: MONAI's own output.

    Example::

        bb = MonaiBackbone("UNet", unet_kwargs())
        emb = bb(torch.rand(2, 1, 32, 32, 32))  # (2, 240)
    """

    def __init__(self, monai_class: str, kwargs: dict[str, Any]) -> None:
        super().__init__()
        if monai_class not in SUPPORTED:
            raise ConfigError(f"unknown MONAI backbone {monai_class!r}: use one of {', '.join(SUPPORTED)}")
        from monai.networks import nets

        self.monai_class = monai_class
        self.kwargs = _jsonable(dict(kwargs))
        self.net = getattr(nets, monai_class)(**self.kwargs)
        self.in_channels = int(self.kwargs["in_channels"])
        if monai_class == "UNet":
            self._down = _unet_down_path(self.net)
            self.embed_dim = int(sum(self.kwargs["channels"]))
        elif monai_class == "SwinUNETR":
            self.embed_dim = 31 * int(self.kwargs.get("feature_size", 24))
        else:
            if self.kwargs.get("proj_type", "conv") != "conv":
                raise ConfigError("ViTAutoEnc backbones need proj_type='conv' (the default)")
            from monai.utils import ensure_tuple_rep

            self._patch = tuple(int(p) for p in ensure_tuple_rep(self.kwargs["patch_size"], 3))
            img = ensure_tuple_rep(self.kwargs["img_size"], 3)
            self._grid = tuple(int(s) // p for s, p in zip(img, self._patch, strict=True))
            self.embed_dim = int(self.kwargs.get("hidden_size", 768))
            for blk in self.net.blocks:  # MONAI builds this norm even without cross-attention, then never uses it
                if not getattr(blk, "with_cross_attention", True):
                    blk.norm_cross_attn.requires_grad_(False)

    @property
    def heavy_finetune(self) -> bool:
        """Whether fine-tuning :meth:`segmenter`'s network is costly on a CPU (SwinUNETR's window attention: the
        few-shot segmentation probe gives it fewer, smaller steps)."""
        return self.monai_class == "SwinUNETR"

    @property
    def min_segment_size(self) -> int:
        """The smallest cubic input side :meth:`segmenter`'s network trains on: SwinUNETR 64 (its instance norm
        refuses the 1^3 bottleneck of 32^3), UNet twice the product of its strides (a 2^3 bottom: 16 by default)."""
        if self.monai_class == "SwinUNETR":
            return 64
        if self.monai_class == "UNet":
            return 2 * int(np.prod(self.kwargs["strides"]))
        return int(max(self._patch))

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise DataError(
                f"{self.monai_class} backbone expects volumes (B, {self.in_channels}, D, H, W), got shape "
                f"{tuple(x.shape)}: add the channel axis (x.unsqueeze(1)) or batch the samples"
            )

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's feature maps of ``x``, fine to coarse (see the module docstring for each class).

        Args:
            x: ``(B, in_channels, D, H, W)`` volumes.
        """
        self._check(x)
        if self.monai_class == "UNet":
            maps = []
            for block in self._down:
                x = block(x)
                maps.append(x)
            return maps
        if self.monai_class == "SwinUNETR":
            return list(self.net.swinViT(x, self.net.normalize))
        return [self._vit_tokens(x)]

    def _vit_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """ViTAutoEnc's encoder on ``x`` as a map ``(B, hidden_size, D/p, H/p, W/p)``."""
        if any(s % p for s, p in zip(x.shape[2:], self._patch, strict=True)):
            raise DataError(
                f"ViTAutoEnc input sizes {tuple(x.shape[2:])} must be multiples of its patch size {self._patch}: "
                "crop or pad the volume"
            )
        pe = self.net.patch_embedding
        t = pe.patch_embeddings(x)  # (B, hidden, d, h, w)
        grid = tuple(t.shape[2:])
        t = t.flatten(2).transpose(1, 2)
        pos = pe.position_embeddings
        if grid != self._grid:
            pos = pos.transpose(1, 2).reshape(1, -1, *self._grid)
            pos = F.interpolate(pos, size=grid, mode="trilinear", align_corners=False).flatten(2).transpose(1, 2)
        t = pe.dropout(t + pos)
        for blk in self.net.blocks:
            t = blk(t)
        t = self.net.norm(t)
        return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], *grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average pooled feature maps, concatenated: ``(B, in_channels, D, H, W) -> (B, embed_dim)``."""
        return torch.cat([m.mean(dim=(2, 3, 4)) for m in self.features(x)], dim=1)

    def segmenter(self, num_classes: int) -> nn.Module | None:
        """A new MONAI network of this class for dense fine-tuning, ``(B, C, D, H, W) -> (B, num_classes, D, H, W)``,
        on this backbone's device and dtype.

        UNet: every weight copied except the top up-sampling block (``model.2``, the layer that makes the output
        channels). SwinUNETR: every weight copied except the output head ``out`` (so the ``swinViT`` encoder and the
        decoder). ViTAutoEnc: ``None`` (its decoder is two transposed convolutions, not a segmenter).

        Args:
            num_classes: output channels (background included).
        """
        if self.monai_class == "ViTAutoEnc":
            return None
        from monai.networks import nets

        net = getattr(nets, self.monai_class)(**{**self.kwargs, "out_channels": int(num_classes)})
        head = "model.2." if self.monai_class == "UNet" else "out."
        own = self.net.state_dict()
        state = net.state_dict()
        for k, v in own.items():
            if not k.startswith(head):
                state[k] = v.detach().clone()
        net.load_state_dict(state, strict=True)
        p = next(self.net.parameters())
        return net.to(device=p.device, dtype=p.dtype)

    def config(self) -> dict[str, Any]:
        """``{"monai_class": ..., "kwargs": {...}}``, what :func:`build_monai_backbone` rebuilds it from."""
        return {"monai_class": self.monai_class, "kwargs": json.loads(json.dumps(self.kwargs))}


def build_monai_backbone(config: dict[str, Any]) -> MonaiBackbone:
    """Rebuild a :class:`MonaiBackbone` from its :meth:`MonaiBackbone.config` (the export's backbone builder)."""
    if not isinstance(config, dict) or "monai_class" not in config or "kwargs" not in config:
        raise ConfigError(f"a MONAI backbone config needs 'monai_class' and 'kwargs', got {config!r}")
    return MonaiBackbone(config["monai_class"], config["kwargs"])

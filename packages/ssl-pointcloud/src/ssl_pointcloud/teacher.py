"""SLidR's frozen 2-D teacher: by default a small ssl-vision ResNet pretrained with ssl-vision's SimCLR on the
rendered images of the default training scenes (:mod:`ssl_pointcloud.scenes`), written as a selfsup export
under ``~/.cache/selfsup/pointcloud/teachers/<key>`` and reused by later runs; or any exported vision backbone.
:class:`DenseTeacher` turns either into per-pixel features (:mod:`ssl_pointcloud.methods.slidr` distils them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_model
from torch import nn

from ssl_core.errors import ConfigError
from ssl_core.io import atomic_write
from ssl_pointcloud.data.config import cache_root
from ssl_pointcloud.scenes import SceneConfig, scene_arrays

TEACHER_VERSION = 2  # of the teacher's training recipe: part of its cache key


@dataclass
class TeacherConfig:
    """The default teacher: a ResNet pretrained with SimCLR on the rendered scene images.

    Args:
        layers: residual blocks per stage of the ResNet (3 stages: a 64-pixel image gives an 8 x 8 map).
        width: channels of its first stage (doubled per stage: 64-d features with the defaults).
        steps: SimCLR steps (0: a random, untrained teacher, an ablation).
        max_seconds: stop the teacher's training after this many seconds even if ``steps`` are not done
            (``None``, the default: no limit, so the cached teacher is the same on every machine). A teacher
            cut short is cached as it is (its ``config.json`` records the steps taken).
        batch_size: images per step.
        lr: AdamW learning rate.
        temperature: NT-Xent temperature.
        num_images: rendered training images it learns from (those of the first scenes of the default set).
        seed: seeds its initialisation and views.
    """

    layers: list[int] = field(default_factory=lambda: [1, 1, 1])
    width: int = 16
    steps: int = 150
    max_seconds: float | None = None
    batch_size: int = 32
    lr: float = 2e-3
    temperature: float = 0.1
    num_images: int = 1000
    seed: int = 0

    def key(self) -> str:
        """Cache key of the trained teacher: its settings, the scenes' key and :data:`TEACHER_VERSION`."""
        scenes = SceneConfig(num_scenes=self.num_images).key("train")
        text = json.dumps({**dataclasses.asdict(self), "scenes": scenes, "version": TEACHER_VERSION})
        return hashlib.sha1(text.encode()).hexdigest()[:16]


class DenseTeacher(nn.Module):
    """A frozen image backbone as a dense feature extractor: uint8 images -> per-pixel features.

    Args:
        backbone: an ssl-vision ResNet (``forward_features``: its last map) or ViT (patch tokens).
        mean, std: per-channel normalisation of the images scaled to ``[0, 1]``.

    Shapes:
        - input: ``(B, 3, H, W)`` uint8; output: ``(B, dim, H, W)`` (bilinearly upsampled)
    """

    def __init__(self, backbone: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.net = backbone.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))
        with torch.no_grad():
            self.dim = (
                int(backbone.embed_dim) if self._is_vit() else int(self._maps(torch.zeros(1, 3, 32, 32)).shape[1])
            )

    def _is_vit(self) -> bool:
        return hasattr(self.net, "patch_embed")

    def _maps(self, x: torch.Tensor) -> torch.Tensor:
        if self._is_vit():
            tokens = self.net.forward_features(x)[:, 1:]  # (B, n, dim) after the class token
            g = int(round(math.sqrt(tokens.shape[1])))
            return tokens.transpose(1, 2).reshape(x.shape[0], -1, g, g)
        return self.net.forward_features(x)

    def train(self, mode: bool = True) -> DenseTeacher:
        """The teacher stays in evaluation mode (frozen batch-norm statistics)."""
        super().train(mode)
        self.net.eval()
        return self

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float() / 255 - self.mean) / self.std
        f = self._maps(x)
        return F.interpolate(f, size=images.shape[-2:], mode="bilinear", align_corners=False)


def _image_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    x = images.float() / 255
    return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).clamp(min=1e-3).tolist()


def train_teacher(config: TeacherConfig, images: torch.Tensor, log: bool = True) -> tuple[nn.Module, dict]:
    """Pretrain the default teacher: ssl-vision's SimCLR (mild hue jitter: an object's hue tells its class) on
    ``images`` for ``config.steps`` steps.

    Args:
        config: the teacher's settings.
        images: uint8 ``(S, 3, H, W)``.
        log: print progress to stderr.

    Returns:
        the backbone (a ResNet, eval mode) and its ``input`` description (``mean``, ``std``, ``image_size``).
    """
    import sys

    from ssl_vision.data.images import ImageInfo
    from ssl_vision.methods.simclr import SimCLR, SimCLRConfig
    from ssl_vision.models.resnet import ResNetConfig
    from ssl_vision.transforms.views import ViewConfig

    mean, std = _image_stats(images)
    info = ImageInfo(channels=3, image_size=int(images.shape[-1]), mean=mean, std=std)
    views = ViewConfig(crop_scale=[0.3, 1.0], hue=0.02, saturation=0.6)
    backbone = ResNetConfig(layers=list(config.layers), width=config.width, stem_stride=2, pool="grid")
    rng_state = torch.get_rng_state()
    torch.manual_seed(config.seed)
    method = SimCLR(
        SimCLRConfig(
            backbone=backbone,
            views=views,
            temperature=config.temperature,
            proj_hidden_dim=256,
            gather_distributed=False,
        ),
        info,
    )
    pretext, collate = method.pretext(), method.collate()
    opt = torch.optim.AdamW(method.parameters(), lr=config.lr, weight_decay=1e-4)
    t0 = time.perf_counter()
    method.train()
    done = 0
    for step in range(config.steps):
        if config.max_seconds is not None and time.perf_counter() - t0 > config.max_seconds:
            break
        idx = torch.randint(len(images), (config.batch_size,))
        batch = collate([pretext(images[i]) for i in idx.tolist()])
        lr = config.lr * 0.5 * (1 + math.cos(math.pi * step / config.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        loss = method(batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        done = step + 1
        if log and (step % 50 == 0 or step == config.steps - 1):
            print(
                f"slidr teacher: SimCLR step {step + 1}/{config.steps} loss {loss.item():.3f} "
                f"({time.perf_counter() - t0:.0f} s)",
                file=sys.stderr,
            )
    torch.set_rng_state(rng_state)
    net = method.backbone.eval()
    if log:
        print(f"slidr teacher: {done} SimCLR steps in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return net, {
        "steps": done,
        "channels": 3,
        "image_size": info.image_size,
        "mean": mean,
        "std": std,
        "layout": "uint8 RGB (B, 3, H, W) scaled to [0, 1], normalised with mean/std",
    }


def default_teacher(config: TeacherConfig, cache_dir: str | None = None) -> Path:
    """The export folder of the default teacher: ``<cache>/teachers/<key>``, trained and written (atomically,
    a selfsup export: ``backbone.safetensors`` + ``config.json``) when missing."""
    import dataclasses as dc

    path = cache_root(cache_dir) / "teachers" / config.key()
    if (path / "config.json").is_file():
        return path
    arrays = scene_arrays(SceneConfig(num_scenes=config.num_images), "train", cache_dir)
    images = torch.from_numpy(arrays["images"]).permute(0, 3, 1, 2).contiguous()
    net, inp = train_teacher(config, images)
    cfg = {
        "format": "selfsup-backbone",
        "version": 1,
        "modality": "vision",
        "name": "resnet",
        "config": dc.asdict(net.config),
        "embed_dim": net.embed_dim,
        "input": inp,
        "recipe": "pointcloud/slidr (teacher: vision SimCLR on rendered scene images)",
        "source": {"teacher_config": dc.asdict(config)},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, fsync=False) as tmp:
        tmp.mkdir()
        save_model(net, str(tmp / "backbone.safetensors"))
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    return path


def load_teacher(path: str | Path) -> DenseTeacher:
    """A :class:`DenseTeacher` from an exported vision backbone (its ``input`` gives the normalisation)."""
    from ssl_core.export import load_backbone

    path = Path(path)
    net = load_backbone(path)
    cfg = json.loads((path / "config.json").read_text())
    inp = cfg.get("input") or {}
    if cfg.get("modality") != "vision" or inp.get("channels", 3) != 3:
        raise ConfigError(
            f"{path} is not an RGB vision backbone (modality {cfg.get('modality')!r}, "
            f"{inp.get('channels')} channels); SLidR's teacher must take 3-channel images"
        )
    return DenseTeacher(net, inp.get("mean", [0.5] * 3), inp.get("std", [0.25] * 3))

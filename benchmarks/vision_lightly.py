"""lightly's version of each selfsup vision method, for the side-by-side table (benchmarks/vision_table.py).

Each model is written the way lightly's own examples (``examples/pytorch/<method>.py`` of lightly 1.6)
write it -- lightly's heads, losses, memory banks, momentum helpers and transforms in a plain PyTorch
loop -- on OUR backbone (the same ResNet / ViT class and configuration), with the settings of our recipe:
head widths, temperatures, queue sizes, EMA momentum, views, optimizer, learning-rate schedule, batch
size and number of steps. What remains different is lightly's code itself, and these known details:

- lightly encodes the views one at a time (its examples do), we encode same-sized views in one pass;
- lightly's transforms augment one PIL image at a time in the data loader (as a torchvision data set hands
  them over); ours draw each view's parameters per image and compute the pixels per batch, with the same
  arithmetic as torchvision's per-image transforms and PIL's blur (``ssl_vision.transforms.views.View``);
- lightly's heads put BatchNorm where lightly puts it (e.g. SimCLR's output layer has one).

lightly is a test/benchmark-only dependency (the root ``dev`` group); nothing in the product imports it.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from lightly.loss import (
    BarlowTwinsLoss,
    DCLLoss,
    DCLWLoss,
    DINOLoss,
    NegativeCosineSimilarity,
    NTXentLoss,
    SwaVLoss,
    VICRegLoss,
)
from lightly.loss.memory_bank import MemoryBankModule
from lightly.models import utils
from lightly.models.modules import (
    MAEDecoder,
    MaskedVisionTransformerTorchvision,
    NNMemoryBankModule,
    SwaVPrototypes,
)
from lightly.models.modules.heads import (
    BarlowTwinsProjectionHead,
    BYOLPredictionHead,
    BYOLProjectionHead,
    DINOProjectionHead,
    MoCoProjectionHead,
    NNCLRPredictionHead,
    NNCLRProjectionHead,
    SimCLRProjectionHead,
    SimSiamPredictionHead,
    SimSiamProjectionHead,
    SwaVProjectionHead,
)
from lightly.models.utils import deactivate_requires_grad, get_weight_decay_parameters, update_momentum
from lightly.transforms import (
    BYOLTransform,
    BYOLView1Transform,
    BYOLView2Transform,
    DINOTransform,
    MAETransform,
    MoCoV2Transform,
    SimCLRTransform,
    SimSiamTransform,
    SwaVTransform,
)
from lightly.utils.scheduler import cosine_schedule, cosine_warmup_schedule, linear_warmup_schedule
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ssl_core.train.config import TrainConfig
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.common import build_backbone
from ssl_vision.transforms.views import ViewConfig


def lightly_view_kwargs(view: ViewConfig, info: ImageInfo) -> dict:
    """Our :class:`ViewConfig` as the keyword arguments of lightly's SimCLR-style view transforms.

    Colour operations that our views skip on 1-channel images (saturation, hue, grayscale) are switched
    off here too, so both libraries draw the same kinds of views."""
    rgb = info.channels == 3
    return dict(
        input_size=view.size or info.image_size,
        cj_prob=view.jitter_prob,
        cj_strength=1.0,
        cj_bright=view.brightness,
        cj_contrast=view.contrast,
        cj_sat=view.saturation if rgb else 0.0,
        cj_hue=view.hue if rgb else 0.0,
        min_scale=view.crop_scale[0],
        random_gray_scale=view.grayscale_prob if rgb else 0.0,
        gaussian_blur=view.blur_prob,
        sigmas=tuple(view.blur_sigma),
        hf_prob=view.hflip,
        normalize={"mean": list(info.mean), "std": list(info.std)},
    )


class PILImages(Dataset):
    """Our uint8 ``(C, H, W)`` training images as PIL images through a lightly transform (what a torchvision
    data set such as ``FashionMNIST`` hands to lightly's transforms)."""

    def __init__(self, images: Dataset, transform: Callable) -> None:
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        x = self.images[i]
        img = (
            Image.fromarray(x[0].numpy(), mode="L") if x.shape[0] == 1 else Image.fromarray(x.permute(1, 2, 0).numpy())
        )
        return self.transform(img)


# ----------------------------------------------------------------------------------------------- methods
class LightlyModel(nn.Module):
    """What the loop needs: ``backbone``, ``transform`` (image -> list of views) and ``training_loss``."""

    backbone: nn.Module
    transform: Callable

    def training_loss(self, views, step: int) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class LightlySimCLR(LightlyModel):
    """lightly's ``examples/pytorch/simclr.py`` (with ``DCLLoss`` / ``DCLWLoss`` for the DCL rows)."""

    def __init__(self, cfg, info: ImageInfo, total_steps: int, train: TrainConfig) -> None:
        super().__init__()
        self.backbone = build_backbone(cfg.backbone, info, cfg.vit)
        self.projection_head = SimCLRProjectionHead(
            self.backbone.embed_dim, cfg.proj_hidden_dim, cfg.proj_dim, num_layers=cfg.proj_layers
        )
        if cfg.loss == "dcl":
            self.criterion = DCLLoss(temperature=cfg.temperature)
        elif cfg.loss == "dclw":
            self.criterion = DCLWLoss(temperature=cfg.temperature, sigma=cfg.dclw_sigma)
        else:
            self.criterion = NTXentLoss(temperature=cfg.temperature)
        self.transform = SimCLRTransform(**lightly_view_kwargs(cfg.views, info))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.backbone(x))

    def training_loss(self, views, step: int) -> torch.Tensor:
        x0, x1 = views
        return self.criterion(self(x0), self(x1))


class Momentum(LightlyModel):
    """The momentum-encoder pattern of lightly's MoCo / BYOL / DINO examples: ``copy.deepcopy`` +
    ``deactivate_requires_grad``, then ``update_momentum`` with a cosine schedule before each step."""

    def setup_momentum(self, total_steps: int, train: TrainConfig, **parts: nn.Module) -> None:
        self.total_steps, self.ema = total_steps, (train.ema_momentum, train.ema_momentum_end)
        self.pairs = []
        for name, module in parts.items():
            twin = copy.deepcopy(module)
            deactivate_requires_grad(twin)
            setattr(self, name + "_momentum", twin)
            self.pairs.append((module, twin))

    def update(self, step: int) -> None:
        m = cosine_schedule(step, self.total_steps, *self.ema)
        for module, twin in self.pairs:
            update_momentum(module, twin, m=m)


class LightlyMoCo(Momentum):
    """lightly's ``examples/pytorch/moco.py``: ``MoCoProjectionHead``, ``NTXentLoss`` with a memory bank."""

    def __init__(self, cfg, info: ImageInfo, total_steps: int, train: TrainConfig) -> None:
        super().__init__()
        self.backbone = build_backbone(cfg.backbone, info, cfg.vit)
        self.projection_head = MoCoProjectionHead(self.backbone.embed_dim, cfg.proj_hidden_dim, cfg.proj_dim)
        self.setup_momentum(total_steps, train, backbone=self.backbone, projection_head=self.projection_head)
        self.criterion = NTXentLoss(temperature=cfg.temperature, memory_bank_size=(cfg.queue_size, cfg.proj_dim))
        self.transform = MoCoV2Transform(**lightly_view_kwargs(cfg.views, info))

    def training_loss(self, views, step: int) -> torch.Tensor:
        self.update(step)
        x_query, x_key = views
        query = self.projection_head(self.backbone(x_query))
        key = self.projection_head_momentum(self.backbone_momentum(x_key)).detach()
        return self.criterion(query, key)


def byol_transform(views: list, info: ImageInfo) -> BYOLTransform:
    """lightly's BYOL pair with the settings of our two :class:`ViewConfig` (blur, solarisation, jitter)."""
    kw = [lightly_view_kwargs(v, info) for v in views[:2]]
    return BYOLTransform(
        BYOLView1Transform(**kw[0], solarization_prob=views[0].solarize_prob),
        BYOLView2Transform(**kw[1], solarization_prob=views[1].solarize_prob),
    )


class LightlyBYOL(Momentum):
    """lightly's ``examples/pytorch/byol.py``."""

    def __init__(self, cfg, info: ImageInfo, total_steps: int, train: TrainConfig) -> None:
        super().__init__()
        self.backbone = build_backbone(cfg.backbone, info, cfg.vit)
        self.projection_head = BYOLProjectionHead(self.backbone.embed_dim, cfg.proj_hidden_dim, cfg.proj_dim)
        self.prediction_head = BYOLPredictionHead(cfg.proj_dim, cfg.proj_hidden_dim, cfg.proj_dim)
        self.setup_momentum(total_steps, train, backbone=self.backbone, projection_head=self.projection_head)
        self.criterion = NegativeCosineSimilarity()
        self.transform = byol_transform(cfg.views, info)

    def training_loss(self, views, step: int) -> torch.Tensor:
        self.update(step)
        x0, x1 = views[:2]
        p0, p1 = (self.prediction_head(self.projection_head(self.backbone(x))) for x in (x0, x1))
        z0, z1 = (self.projection_head_momentum(self.backbone_momentum(x)).detach() for x in (x0, x1))
        return 0.5 * (self.criterion(p0, z1) + self.criterion(p1, z0))


class LightlySimSiam(LightlyModel):
    """lightly's ``examples/pytorch/simsiam.py``."""

    def __init__(self, cfg, info: ImageInfo, total_steps: int, train: TrainConfig) -> None:
        super().__init__()
        self.backbone = build_backbone(cfg.backbone, info, cfg.vit)
        self.projection_head = SimSiamProjectionHead(self.backbone.embed_dim, cfg.proj_dim, cfg.proj_dim)
        self.prediction_head = SimSiamPredictionHead(cfg.proj_dim, cfg.pred_hidden_dim, cfg.proj_dim)
        self.criterion = NegativeCosineSimilarity()
        self.transform = SimSiamTransform(**lightly_view_kwargs(cfg.views, info))

    def forward(self, x: torch.Tensor):
        z = self.projection_head(self.backbone(x))
        return z.detach(), self.prediction_head(z)

    def training_loss(self, views, step: int) -> torch.Tensor:
        (z0, p0), (z1, p1) = (self(x) for x in views[:2])
        return 0.5 * (self.criterion(z0, p1) + self.criterion(z1, p0))


class LightlyNNCLR(LightlyModel):
    """lightly's ``examples/pytorch/nnclr.py`` (``NNMemoryBankModule``, ``NTXentLoss``)."""

    def __init__(self, cfg, info: ImageInfo, total_steps: int, train: TrainConfig) -> None:
        super().__init__()
        self.backbone = build_backbone(cfg.backbone, info, cfg.vit)
        self.projection_head = NNCLRProjectionHead(self.backbone.embed_dim, cfg.proj_hidden_dim, cfg.proj_dim)
        self.prediction_head = NNCLRPredictionHead(cfg.proj_dim, cfg.proj_hidden_dim, cfg.proj_dim)
        self.memory_bank = NNMemoryBankModule(size=(cfg.support_size, cfg.proj_dim))
        self.criterion = NTXentLoss(temperature=cfg.temperature)
        self.transform = SimCLRTransform(**lightly_view_kwargs(cfg.views, info))

    def forward(self, x: torch.Tensor):
        z = self.projection_head(self.backbone(x))
        return z.detach(), self.prediction_head(z)

    def training_loss(self, views, step: int) -> torch.Tensor:
        (z0, p0), (z1, p1) = (self(x) for x in views[:2])
        z0 = self.memory_bank(z0, update=False)
        z1 = self.memory_bank(z1, update=True)
        return 0.5 * (self.criterion(z0, p1) + self.criterion(z1, p0))


class LightlyBarlowTwins(LightlyModel):
    """lightly's ``examples/pytorch/barlowtwins.py`` (BYOL's views, as the paper)."""

    def __init__(self, cfg, info: ImageInfo, total_steps: int, train: TrainConfig) -> None:
        super().__init__()
        self.backbone = build_backbone(cfg.backbone, info, cfg.vit)
        self.projection_head = BarlowTwinsProjectionHead(self.backbone.embed_dim, cfg.proj_dim, cfg.proj_dim)
        self.criterion = BarlowTwinsLoss(lambda_param=cfg.lambda_)
        self.transform = byol_transform(cfg.views, info)

    def training_loss(self, views, step: int) -> torch.Tensor:
        z0, z1 = (self.projection_head(self.backbone(x)) for x in views[:2])
        return self.criterion(z0, z1)


class LightlyVICReg(LightlyModel):
    """lightly's ``examples/pytorch/vicreg.py`` (its ``BarlowTwinsProjectionHead`` as the expander)."""

    def __init__(self, cfg, info: ImageInfo, total_steps: int, train: TrainConfig) -> None:
        super().__init__()
        self.backbone = build_backbone(cfg.backbone, info, cfg.vit)
        self.projection_head = BarlowTwinsProjectionHead(self.backbone.embed_dim, cfg.proj_dim, cfg.proj_dim)
        self.criterion = VICRegLoss(lambda_param=cfg.sim_coeff, mu_param=cfg.std_coeff, nu_param=cfg.cov_coeff)
        self.transform = byol_transform(cfg.views, info)

    def training_loss(self, views, step: int) -> torch.Tensor:
        z0, z1 = (self.projection_head(self.backbone(x)) for x in views[:2])
        return self.criterion(z0, z1)


class LightlySwaV(LightlyModel):
    """lightly's ``examples/pytorch/swav.py`` with the queues of its SwAV benchmark module
    (``MemoryBankModule`` per high-resolution crop, used from ``queue_start_step``)."""

    def __init__(self, cfg, info: ImageInfo, total_steps: int, train: TrainConfig) -> None:
        super().__init__()
        self.backbone = build_backbone(cfg.backbone, info, cfg.vit)
        self.projection_head = SwaVProjectionHead(self.backbone.embed_dim, cfg.proj_hidden_dim, cfg.proj_dim)
        self.prototypes = SwaVPrototypes(cfg.proj_dim, cfg.n_prototypes, cfg.freeze_prototypes_steps)
        self.n_global = len(cfg.crops.global_views)
        self.queue_start = cfg.queue_start_step
        self.queues = nn.ModuleList(
            MemoryBankModule(size=(cfg.queue_size, cfg.proj_dim), feature_dim_first=False)
            for _ in range(self.n_global if cfg.queue_size else 0)
        )
        self.criterion = SwaVLoss(cfg.temperature, cfg.sinkhorn_iters, cfg.epsilon)
        g, loc = cfg.crops.global_views[0], cfg.crops.local_view
        kw = lightly_view_kwargs(g, info)
        self.transform = SwaVTransform(
            crop_sizes=(kw.pop("input_size"), loc.size or info.image_size),
            crop_counts=(self.n_global, cfg.crops.n_local),
            crop_min_scales=(kw.pop("min_scale"), loc.crop_scale[0]),
            crop_max_scales=(g.crop_scale[1], loc.crop_scale[1]),
            **kw,
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projection_head(self.backbone(x)), dim=1)

    def training_loss(self, views, step: int) -> torch.Tensor:
        self.prototypes.normalize()
        high = [self.features(x) for x in views[: self.n_global]]
        low = [self.features(x) for x in views[self.n_global :]]
        queue_out = None
        if self.queues:
            banks = [q(z.detach(), update=True)[1] for q, z in zip(self.queues, high, strict=True)]
            if step >= self.queue_start:
                queue_out = [self.prototypes(b, step) for b in banks]
        return self.criterion(
            [self.prototypes(z, step) for z in high], [self.prototypes(z, step) for z in low], queue_out
        )


class LightlyDINO(Momentum):
    """lightly's ``examples/pytorch/dino.py`` (the teacher head built apart and loaded from the student's
    state, since weight-normalised heads cannot be deep-copied)."""

    def __init__(self, cfg, info: ImageInfo, total_steps: int, train: TrainConfig) -> None:
        super().__init__()
        self.backbone = build_backbone(cfg.backbone, info, cfg.vit)
        head = dict(hidden_dim=cfg.head_hidden_dim, bottleneck_dim=cfg.bottleneck_dim, output_dim=cfg.out_dim)
        self.student_head = DINOProjectionHead(self.backbone.embed_dim, **head, freeze_last_layer=1)
        self.teacher_head = DINOProjectionHead(self.backbone.embed_dim, **head)
        self.teacher_head.load_state_dict(self.student_head.state_dict())
        deactivate_requires_grad(self.teacher_head)
        self.setup_momentum(total_steps, train, backbone=self.backbone)
        self.pairs.append((self.student_head, self.teacher_head))
        self.n_global, self.freeze_steps = len(cfg.crops.global_views), cfg.freeze_last_layer_steps
        self.temps = (cfg.warmup_teacher_temp, cfg.teacher_temp, cfg.teacher_temp_warmup_epochs)
        self.steps_per_epoch = 1
        self.criterion = DINOLoss(cfg.out_dim, cfg.warmup_teacher_temp, cfg.teacher_temp, student_temp=cfg.student_temp,
                                  center_momentum=cfg.center_momentum)  # fmt: skip
        g1, g2 = cfg.crops.global_views[:2]
        loc = cfg.crops.local_view
        kw = lightly_view_kwargs(g1, info)
        del kw["gaussian_blur"]  # one probability per view kind, given below
        self.transform = DINOTransform(
            global_crop_size=kw.pop("input_size"),
            global_crop_scale=(kw.pop("min_scale"), g1.crop_scale[1]),
            local_crop_size=loc.size or info.image_size,
            local_crop_scale=tuple(loc.crop_scale),
            n_local_views=cfg.crops.n_local,
            gaussian_blur=(g1.blur_prob, g2.blur_prob, loc.blur_prob),
            solarization_prob=g2.solarize_prob,
            **kw,
        )

    def training_loss(self, views, step: int) -> torch.Tensor:
        self.update(step)
        warm, temp, warm_epochs = self.temps
        teacher_temp = linear_warmup_schedule(step, round(warm_epochs * self.steps_per_epoch), warm, temp)
        teacher_out = [self.teacher_head(self.backbone_momentum(x)) for x in views[: self.n_global]]
        student_out = [self.student_head(self.backbone(x)) for x in views]
        return self.criterion(teacher_out, student_out, teacher_temp=teacher_temp)

    def before_optimizer_step(self, step: int) -> None:
        if step < self.freeze_steps:  # cancel_last_layer_gradients, counted in steps as our recipe
            for p in self.student_head.last_layer.parameters():
                p.grad = None


class LightlyMAE(LightlyModel):
    """lightly's ``examples/pytorch/mae.py`` on a torchvision ViT of our ViT's shape (width, depth, heads,
    patch size; 1-channel patch projection), with MAE's normalised-pixel targets as our recipe."""

    def __init__(self, cfg, info: ImageInfo, total_steps: int, train: TrainConfig) -> None:
        super().__init__()
        from torchvision.models.vision_transformer import VisionTransformer

        v = cfg.backbone
        vit = VisionTransformer(info.image_size, v.patch_size, v.num_blocks, v.heads, v.dim, int(v.dim * v.mlp_ratio))
        vit.conv_proj = nn.Conv2d(info.channels, v.dim, v.patch_size, stride=v.patch_size)
        vit.heads = nn.Identity()
        self.patch_size, self.mask_ratio, self.norm_pix = v.patch_size, cfg.mask_ratio, cfg.norm_pix_loss
        self.sequence_length = vit.seq_length
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.decoder_dim))
        self.backbone = MaskedVisionTransformerTorchvision(vit=vit)
        self.decoder = MAEDecoder(
            seq_length=vit.seq_length,
            num_layers=cfg.decoder_depth,
            num_heads=cfg.decoder_heads,
            embed_input_dim=v.dim,
            hidden_dim=cfg.decoder_dim,
            mlp_dim=4 * cfg.decoder_dim,
            out_dim=v.patch_size**2 * info.channels,
        )
        self.criterion = nn.MSELoss()
        self.transform = MAETransform(input_size=info.image_size, min_scale=cfg.view.crop_scale[0],
                                      normalize={"mean": list(info.mean), "std": list(info.std)})  # fmt: skip

    def training_loss(self, views, step: int) -> torch.Tensor:
        images = views[0]
        b = images.shape[0]
        idx_keep, idx_mask = utils.random_token_mask((b, self.sequence_length), self.mask_ratio, device=images.device)
        x_encoded = self.backbone.encode(images=images, idx_keep=idx_keep)
        x_decode = self.decoder.embed(x_encoded)
        x_masked = utils.repeat_token(self.mask_token, (b, self.sequence_length))
        x_masked = utils.set_at_index(x_masked, idx_keep, x_decode.type_as(x_masked))
        x_pred = self.decoder.predict(utils.get_at_index(self.decoder.decode(x_masked), idx_mask))
        target = utils.get_at_index(utils.patchify(images, self.patch_size), idx_mask - 1)
        if self.norm_pix:
            target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6) ** 0.5
        return self.criterion(x_pred, target)


LIGHTLY_METHODS: dict[str, type[LightlyModel]] = {
    "simclr": LightlySimCLR,
    "moco_v2": LightlyMoCo,
    "byol": LightlyBYOL,
    "simsiam": LightlySimSiam,
    "nnclr": LightlyNNCLR,
    "barlow_twins": LightlyBarlowTwins,
    "vicreg": LightlyVICReg,
    "swav": LightlySwaV,
    "dino": LightlyDINO,
    "mae": LightlyMAE,
}


# ------------------------------------------------------------------------------------------------- loop
@dataclass
class LightlyRun:
    """What :func:`train_lightly` did."""

    model: nn.Module
    steps: int
    images_per_s: float
    train_s: float
    last_loss: float
    step_s: list[float]


def train_lightly(
    name: str, method_cfg, train_cfg: TrainConfig, info: ImageInfo, images: Dataset, total_steps: int
) -> LightlyRun:
    """Train lightly's version of ``name`` for ``total_steps`` steps of ``train_cfg.batch_size`` images with
    the optimizer, learning-rate / weight-decay settings, warm-up and gradient clipping of ``train_cfg``
    (cosine schedule, lightly's ``cosine_warmup_schedule``), the way lightly's examples loop: a shuffled
    ``DataLoader`` that drops the last incomplete batch."""
    torch.manual_seed(train_cfg.seed)
    model = LIGHTLY_METHODS[name](method_cfg, info, total_steps, train_cfg)
    loader = DataLoader(
        PILImages(images, model.transform),
        batch_size=train_cfg.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=train_cfg.num_workers,
        generator=torch.Generator().manual_seed(train_cfg.seed),
    )
    steps_per_epoch = len(loader)
    model.steps_per_epoch = steps_per_epoch
    decay, no_decay = get_weight_decay_parameters([model])
    groups = [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
    if train_cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(
            groups, lr=train_cfg.peak_lr, weight_decay=train_cfg.weight_decay, betas=train_cfg.betas
        )
    elif train_cfg.optimizer == "sgd":
        opt = torch.optim.SGD(
            groups, lr=train_cfg.peak_lr, weight_decay=train_cfg.weight_decay, momentum=train_cfg.momentum
        )
    else:
        from lightly.utils.lars import LARS

        opt = LARS(groups, lr=train_cfg.peak_lr, weight_decay=train_cfg.weight_decay, momentum=train_cfg.momentum)
    warmup = min(round(train_cfg.warmup_epochs * steps_per_epoch), total_steps)
    model.train()
    wd_end = train_cfg.weight_decay if train_cfg.weight_decay_end is None else train_cfg.weight_decay_end
    step, loss, step_s = 0, torch.tensor(float("nan")), []
    t0 = t_step = time.perf_counter()
    while step < total_steps:
        for views in loader:
            lr = cosine_warmup_schedule(step, total_steps, train_cfg.peak_lr, train_cfg.min_lr, warmup, 0.0)
            wd = cosine_schedule(step, total_steps, train_cfg.weight_decay, wd_end)
            for g in opt.param_groups:
                g["lr"] = lr
            opt.param_groups[0]["weight_decay"] = wd  # group 1 (biases, norms) keeps none
            loss = model.training_loss(views, step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if train_cfg.clip_grad is not None:  # as our trainer (DINO's recipe clips at 3), before the freezing
                torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.clip_grad)
            if hasattr(model, "before_optimizer_step"):
                model.before_optimizer_step(step)
            opt.step()
            step += 1
            now = time.perf_counter()
            step_s.append(now - t_step)  # data loading included, as the trainer's samples_per_s
            t_step = now
            if not math.isfinite(float(loss.detach())):
                raise RuntimeError(f"lightly {name}: the loss became {float(loss)} at step {step}")
            if step >= total_steps:
                break
    train_s = time.perf_counter() - t0
    model.eval()
    return LightlyRun(model, step, step * train_cfg.batch_size / train_s, train_s, float(loss.detach()), step_s)

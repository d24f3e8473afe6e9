"""Every registered vision method: forward/backward on a tiny batch, checkpoints, and the mechanics of each
paper checked against a naive reference (queues, EMA, stop-gradients, nearest neighbours, masking)."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from ssl_core.testing import begin_step, fit_fixed_batch, pretext_batch
from ssl_core.train.checkpoint import load_weights, save_checkpoint
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.nnclr import nearest_neighbour
from ssl_vision.modality import modality
from ssl_vision.models import ResNetConfig, ViTConfig
from ssl_vision.models.vit import patchify
from ssl_vision.transforms import MultiCropConfig, ViewConfig

INFO = ImageInfo(channels=1, image_size=16, mean=[0.5], std=[0.5])
R = ResNetConfig(width=8)  # 64-d embedding, 0.08 M parameters
V = ViTConfig(depth=1)  # ViT-tiny width, one block: 16 patches of a 16x16 image
CROPS = MultiCropConfig(local_view=ViewConfig(size=8, crop_scale=[0.05, 0.4]), n_local=2)
# the smallest settings of every registered recipe (freezing steps at 0, so every parameter learns at once)
TINY = {
    "simclr": dict(backbone=R, proj_hidden_dim=32, proj_dim=16),
    "moco_v2": dict(backbone=R, proj_hidden_dim=32, proj_dim=16, queue_size=24),
    "moco_v3": dict(backbone=R, proj_hidden_dim=32, proj_dim=16),
    "byol": dict(backbone=R, proj_hidden_dim=32, proj_dim=16),
    "simsiam": dict(backbone=R, proj_dim=32, pred_hidden_dim=8),
    "nnclr": dict(backbone=R, proj_hidden_dim=32, proj_dim=16, support_size=24),
    "barlow_twins": dict(backbone=R, proj_dim=32),
    "vicreg": dict(backbone=R, proj_dim=32),
    "swav": dict(backbone=R, proj_hidden_dim=32, proj_dim=16, n_prototypes=10, queue_size=16, queue_start_step=0,
                 freeze_prototypes_steps=0, crops=CROPS),
    "dino": dict(backbone=R, head_hidden_dim=32, bottleneck_dim=16, out_dim=20, freeze_last_layer_steps=0, crops=CROPS),
    "mae": dict(backbone=V, decoder_dim=16, decoder_depth=1, decoder_heads=2),
    "simmim": dict(backbone=V),
    "sit": dict(backbone=V, proj_dim=16),
    "dmjd": dict(backbone=V, decoder_dim=16, decoder_depth=1, decoder_heads=2),
    "droppos": dict(backbone=V, decoder_dim=16, decoder_depth=1, decoder_heads=2),
}  # fmt: skip
# recipes whose pretraining items are not plain images (scene pairs and domains, labelled images) are checked the
# same way in test files of their own
OWN_ITEMS = {"sla", "multitask", "croco", "croco_v2", "mfm"}
STEP_VALUES = {"ema_momentum": 0.9, "lr": 1e-3, "weight_decay": 0.0}


def tiny(name, **kw):
    """The recipe's method with its tiny settings, handed step 0 of a 10-step run."""
    recipe = modality.recipes[name]
    torch.manual_seed(0)
    m = recipe.method(dataclasses.replace(recipe.config, **{**TINY[name], **kw}), INFO)
    begin_step(m)
    return m


def make_batch(method, n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 16, 16), generator=g, dtype=torch.uint8)
    torch.manual_seed(seed)
    return pretext_batch(method, images)


def test_every_registered_recipe_has_a_tiny_setting():
    assert set(TINY) | OWN_ITEMS == set(modality.recipes) and not set(TINY) & OWN_ITEMS


@pytest.mark.parametrize("name", sorted(TINY))
def test_forward_backward_embed_and_checkpoint(name, tmp_path):
    m = tiny(name)
    out = m(make_batch(m))
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    trainable = [(k, p) for k, p in m.named_parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None for _, p in trainable), [k for k, p in trainable if p.grad is None]
    # teachers and momentum encoders are never trained by gradient
    assert all(not p.requires_grad for k, p in m.named_parameters() if k.split(".")[0] in ("key_encoder", "target",
               "teacher", "momentum_encoder"))  # fmt: skip
    m.after_optimizer_step(0, STEP_VALUES)
    x = torch.randn(3, 1, 16, 16)
    m.eval()
    assert m.embed(x).shape == (3, m.backbone_spec().embed_dim)
    # the whole state (teachers, queues, centres) survives a checkpoint
    path = save_checkpoint(tmp_path, 1, m, {}, {})
    other = tiny(name)
    load_weights(other, path)
    for (k, a), b in zip(m.state_dict().items(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_moco_v2_queue_and_momentum_encoder():
    m = tiny("moco_v2")
    batch = make_batch(m)
    q = m.projector(m.backbone(batch[0]))
    with torch.no_grad():
        k = m.key_encoder.module["projector"](m.key_encoder.module["backbone"](batch[1]))
    m(batch)
    torch.testing.assert_close(m.queue.features, k)  # the keys were queued after use
    # with a queue the negatives are the queued keys: InfoNCE against 1 + K candidates (naive reference)
    loss = m(batch).loss
    qn, kn, neg = F.normalize(q, dim=1), F.normalize(k, dim=1), F.normalize(k, dim=1)
    logits = torch.cat([(qn * kn).sum(1, keepdim=True), qn @ neg.T], dim=1) / m.config.temperature
    torch.testing.assert_close(loss, F.cross_entropy(logits, torch.zeros(8, dtype=torch.long)))
    # after an optimizer step the key encoder moves: xi <- m xi + (1 - m) theta
    w_key = m.key_encoder.module["backbone"].stem[0].weight.clone()
    with torch.no_grad():
        m.backbone.stem[0].weight.add_(1.0)
    m.after_optimizer_step(0, STEP_VALUES)
    torch.testing.assert_close(m.key_encoder.module["backbone"].stem[0].weight,
                               0.9 * w_key + 0.1 * m.backbone.stem[0].weight)  # fmt: skip


def test_moco_v3_loss_is_the_symmetric_scaled_infonce():
    m = tiny("moco_v3")
    m.eval()  # BatchNorm in eval mode: one pass over both views equals two passes
    x1, x2 = make_batch(m)
    q1, q2 = (m.predictor(m.projector(m.backbone(x))) for x in (x1, x2))
    teacher = m.momentum_encoder.module
    k1, k2 = (teacher["projector"](teacher["backbone"](x)) for x in (x1, x2))
    t = m.config.temperature

    def ctr(q, k):
        logits = F.normalize(q, dim=1) @ F.normalize(k, dim=1).T / t
        return 2 * t * F.cross_entropy(logits, torch.arange(len(q)))

    torch.testing.assert_close(m((x1, x2)).loss, ctr(q1, k2) + ctr(q2, k1))


def test_byol_loss_and_stop_gradient_into_the_target():
    m = tiny("byol")
    m.eval()
    x1, x2 = make_batch(m)
    p1, p2 = (m.predictor(m.projector(m.backbone(x))) for x in (x1, x2))
    z1, z2 = (m.target.module["projector"](m.target.module["backbone"](x)) for x in (x1, x2))
    ref = sum((2 - 2 * F.cosine_similarity(p, z, dim=1)).mean() for p, z in ((p1, z2), (p2, z1)))
    loss = m((x1, x2)).loss
    torch.testing.assert_close(loss, ref)
    loss.backward()
    assert all(p.grad is None for p in m.target.parameters())


def test_simsiam_gradient_flows_through_the_predictions_only():
    m = tiny("simsiam")
    batch = make_batch(m)
    z = m.projector(m.backbone(torch.cat(batch)))
    z.retain_grad()
    p1, p2 = m.predictor(z).chunk(2)
    z1, z2 = z.detach().chunk(2)
    ref = -0.5 * (F.cosine_similarity(p1, z2).mean() + F.cosine_similarity(p2, z1).mean())
    torch.testing.assert_close(m(batch).loss, ref)


def test_nnclr_nearest_neighbour_and_support_set():
    g = torch.Generator().manual_seed(0)
    z, support = torch.randn(5, 4, generator=g), torch.randn(9, 4, generator=g)
    naive = torch.stack([max(support, key=lambda s: F.cosine_similarity(zi, s, dim=0)) for zi in z])
    torch.testing.assert_close(nearest_neighbour(z, support), naive)
    m = tiny("nnclr")
    batch = make_batch(m)
    m(batch)
    assert len(m.support) == 8  # the first view's projections were added
    m(batch)
    assert len(m.support) == 16


def test_swav_prototypes_on_the_sphere_frozen_at_first_and_queue_joins_when_full():
    m = tiny("swav", freeze_prototypes_steps=2, queue_size=16, queue_start_step=1)
    batch = make_batch(m)
    out = m(batch)
    out.loss.backward()
    torch.testing.assert_close(m.prototypes.weight.norm(dim=1), torch.ones(10))
    assert m.prototypes.weight.grad is None and out.logs["queue"] == 0.0  # frozen; queue not started
    begin_step(m, 1)
    assert m(batch).logs["queue"] == 0.0 and len(m.queues[0]) == 8  # queueing from step 1, not yet full
    begin_step(m, 2)
    m(batch)  # fills the queue
    begin_step(m, 3)
    out = m(batch)
    assert out.logs["queue"] == 1.0
    out.loss.backward()
    assert m.prototypes.weight.grad is not None  # step 3 >= 2: the prototypes learn


def test_dino_last_layer_frozen_at_first_teacher_sees_global_crops_and_schedule():
    m = tiny("dino", freeze_last_layer_steps=1, teacher_temp_warmup_epochs=1.0)
    temps = m.schedules(total_steps=10, steps_per_epoch=5)["teacher_temp"]
    assert temps[0] == pytest.approx(0.04) and temps[4] == pytest.approx(0.07) and temps[-1] == pytest.approx(0.07)
    batch = make_batch(m)
    seen = []
    m.teacher.module["backbone"].register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape))
    out = m(batch)
    assert seen == [(16, 1, 16, 16)]  # 2 global crops of 8 images, no local crop
    out.loss.backward()
    assert m.head.last_weight.grad is None and m.head.mlp[0].weight.grad is not None
    assert out.logs["teacher_temp"] == pytest.approx(temps[0])
    m.zero_grad()
    begin_step(m, 1)
    out = m(batch)
    out.loss.backward()
    assert m.head.last_weight.grad is not None and out.logs["teacher_temp"] == pytest.approx(temps[1])


def test_a_method_that_reads_the_step_says_so_when_none_was_given():
    recipe = modality.recipes["dino"]
    m = recipe.method(dataclasses.replace(recipe.config, **TINY["dino"]), INFO)
    with pytest.raises(RuntimeError, match="begin_step"):
        m(make_batch(m))


@pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")
def test_dino_head_equals_lightlys():
    from lightly.models.modules.heads import DINOProjectionHead

    from ssl_vision.models import DINOHead

    torch.manual_seed(0)
    ours, peer = DINOHead(12, 32, 8, 20), DINOProjectionHead(12, 32, 8, 20)
    with torch.no_grad():
        for a, b in zip(ours.mlp, peer.layers, strict=True):
            if isinstance(a, torch.nn.Linear):
                b.weight.copy_(a.weight)
                b.bias.copy_(a.bias)
        peer.last_layer.weight_v.copy_(ours.last_weight)
    x = torch.randn(5, 12)
    torch.testing.assert_close(ours(x), peer(x))


def test_mae_encoder_sees_only_visible_patches_and_decoder_unshuffles():
    m = tiny("mae")
    batch = make_batch(m)
    assert batch["mask"].sum(1).tolist() == [12] * 8  # 75% of 16 patches
    lengths = []
    m.backbone.blocks[0].register_forward_pre_hook(lambda mod, inp: lengths.append(inp[0].shape[1]))
    latent = m.forward_encoder(batch["image"], batch["ids_keep"])
    assert lengths == [1 + 4]  # class token + the 4 visible patches
    # un-shuffle reference: decoder token l is the encoded visible token whose ids_keep is l, else the mask token
    x = m.decoder.embed(latent)
    ref = m.decoder.mask_token.expand(8, 16, -1).clone()
    for b in range(8):
        for j, pos in enumerate(batch["ids_keep"][b].tolist()):
            ref[b, pos] = x[b, 1 + j]
    seen = []
    m.decoder.blocks[0].register_forward_pre_hook(lambda mod, inp: seen.append(inp[0]))
    m.forward_decoder(latent, batch["ids_restore"])
    torch.testing.assert_close(seen[0][:, 1:], ref + m.decoder.pos_embed[:, 1:])
    # the loss: MSE on the masked patches only, each target patch normalised (naive reference)
    pred = m.forward_decoder(latent, batch["ids_restore"])
    target = patchify(batch["image"], 4)
    errors = []
    for b in range(8):
        for pos in batch["mask"][b].nonzero().flatten().tolist():
            t = target[b, pos]
            errors.append(((pred[b, pos] - (t - t.mean()) / (t.var() + 1e-6).sqrt()) ** 2).mean())
    torch.testing.assert_close(m(batch).loss, torch.stack(errors).mean())


def test_patchify_equals_lightlys():
    from lightly.models import utils

    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(patchify(x, 4), utils.patchify(x, 4))


def test_simmim_encoder_ignores_the_pixels_of_masked_patches():
    m = tiny("simmim")
    m.eval()
    batch = make_batch(m)
    seen = []
    m.head.register_forward_pre_hook(lambda mod, inp: seen.append(inp[0]))
    m(batch)
    images = batch["image"].clone()
    mask_px = batch["mask"].view(8, 4, 4).repeat_interleave(4, 1).repeat_interleave(4, 2)[:, None]
    images[mask_px] = 7.0  # change masked pixels only
    m({**batch, "image": images})
    torch.testing.assert_close(seen[0], seen[1])
    assert batch["mask"].sum(1).tolist() == [10] * 8  # int(16 * 0.4) = 6 patches kept


def test_vit_backbone_takes_multicrop_local_views():
    m = tiny("dino", vit=V, crops=MultiCropConfig(local_view=ViewConfig(size=8, crop_scale=[0.05, 0.4]), n_local=2))
    out = m(make_batch(m))
    out.loss.backward()
    assert torch.isfinite(out.loss) and m.backbone_spec().name == "vit"


def test_convergence_distillation_family():
    """BYOL's loss falls on a fixed batch within a few steps (the distillation family: EMA teacher)."""
    m = tiny("byol")
    batch = make_batch(m, n=16)
    losses = fit_fixed_batch(m, batch, values={"ema_momentum": 0.99})
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def test_convergence_masked_family():
    """MAE's reconstruction loss falls on a fixed batch within a few steps."""
    m = tiny("mae")
    batch = make_batch(m, n=32)
    losses = fit_fixed_batch(m, batch)
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5


@pytest.mark.parametrize("name", ["byol", "mae"])
def test_backbone_rebuilds_from_its_export_spec(name):
    """`selfsup export` rebuilds the backbone from backbone_spec() through the modality's registry."""
    m = tiny(name)
    m.eval()
    spec = m.backbone_spec()
    rebuilt = modality.backbones[spec.name](spec.config)
    rebuilt.load_state_dict(m.backbone.state_dict())
    rebuilt.eval()
    x = torch.randn(2, 1, 16, 16)
    torch.testing.assert_close(rebuilt(x), m.embed(x))
    assert spec.embed_dim == rebuilt(x).shape[1] and spec.name == ("vit" if name == "mae" else "resnet")


def test_a_resumed_dino_run_gets_the_uninterrupted_runs_teacher_temperature_at_every_step(tmp_path):
    """The trainer hands every step's schedule values to the method before forward: a DINO run interrupted
    after 3 of 8 steps and resumed (in a fresh method, whose state knows nothing of the step) logs the
    teacher temperatures, last-layer freezing and losses of the uninterrupted run, step for step."""
    import csv
    import os
    import signal

    from ssl_core.distributed import DistInfo
    from ssl_core.train import TrainConfig, Trainer, seed_everything

    images = torch.randint(0, 256, (64, 1, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    cfg = TrainConfig(epochs=2, batch_size=16, seed=0, progress=False, device="cpu", warmup_epochs=0.5)
    kw = dict(freeze_last_layer_steps=2, teacher_temp_warmup_epochs=1.0)

    class Interrupted(type(tiny("dino"))):
        def after_optimizer_step(self, step, values):
            super().after_optimizer_step(step, values)
            if step + 1 == 3:
                os.kill(os.getpid(), signal.SIGINT)

    def run(folder, method, resume=False):
        return Trainer(method, images, cfg, tmp_path / folder, DistInfo()).fit(resume=resume)

    def log(folder):
        with open(tmp_path / folder / "log.csv", newline="") as f:
            return [(r["step"], r["teacher_temp"], r["loss"]) for r in csv.DictReader(f)]

    seed_everything(0)
    assert run("a", tiny("dino", **kw)).step == 8
    seed_everything(0)
    first = tiny("dino", **kw)
    first.__class__ = Interrupted
    assert run("b", first).stop_reason == "interrupted"
    seed_everything(99)
    assert run("b", tiny("dino", **kw), resume=True).step == 8
    straight, resumed = log("a"), log("b")
    temps = [float(t) for _, t, _ in straight]
    assert temps[0] == pytest.approx(0.04) and temps[-1] == pytest.approx(0.07) and len(set(temps)) > 3
    assert resumed == straight


def test_an_override_reaches_into_a_list_of_views():
    """``--set method.views.0.crop_scale=...`` sets one view of a list-valued setting; a missing index or key,
    or a bad value, is a one-line error that names it."""
    from ssl_core.config import base_config, merge, to_run_config
    from ssl_core.errors import ConfigError

    recipe = modality.recipes["vicreg"]
    cfg = to_run_config(merge(base_config(modality, recipe), overrides=["method.views.1.crop_scale=[0.35,1.0]",
                                                                         "train.lr=4e-3"]))  # fmt: skip
    assert cfg.method.views[1].crop_scale == [0.35, 1.0] and cfg.method.views[0].crop_scale == [0.2, 1.0]
    assert cfg.train.lr == 4e-3
    for bad, msg in ((["method.views.5.hflip=0"], "method.views.5.hflip: no such key"),
                     (["method.views.0.nope=1"], "method.views.0.nope: no such key"),
                     (["method.views.0.hflip=abc"], "method.views.0.hflip=abc")):  # fmt: skip
        with pytest.raises(ConfigError, match=msg):
            to_run_config(merge(base_config(modality, recipe), overrides=bad))

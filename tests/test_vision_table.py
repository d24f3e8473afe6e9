"""The Fashion-MNIST table's harness (benchmarks/vision_table.py, benchmarks/vision_lightly.py): the table
it renders from its results, and every lightly version training a couple of steps on tiny images."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

from helpers import ROOT

BENCH = ROOT / "benchmarks"


def load(name: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def result(row: str, impl: str, seed: int, knn: float, linear: float, **extra) -> dict:
    return {"row": row, "impl": impl, "epochs": 0.5, "seed": seed, "knn_top1": knn, "linear_top1": linear, **extra}


def table_rows(text: str) -> dict[str, list[str]]:
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()[2:]]
    return {r[0]: r for r in rows}


def test_render_averages_seeds_and_skips_smoke_and_failed_runs():
    vt = load("vision_table")
    results = [
        result("simclr", "ours", 0, 0.70, 0.80),
        result("simclr", "ours", 0, 0.76, 0.80),  # a rerun of seed 0: the latest counts
        result("simclr", "ours", 1, 0.74, 0.78),
        result("simclr", "ours", 2, 0.10, 0.10, smoke=True),
        result("simclr", "lightly", 0, 0.73, 0.81),
        result("simclr", "lightly", 1, 0.75, 0.79),
        {"row": "simclr", "impl": "lightly", "epochs": 0.5, "seed": 2, "error": "RuntimeError()"},
        result("moco_v3", "ours", 0, 0.71, 0.72),
        {"row": "raw pixels", "impl": "baseline", "knn_top1": 0.8192, "linear_top1": 0.8338, "knn5_10k_top1": 0.814},
    ]
    rows = table_rows(vt.render(results))
    # ours: (0.76 + 0.74) / 2 = 75%, lightly (0.73 + 0.75) / 2 = 74%: +1.00 points
    assert rows["simclr"] == ["simclr", "0.5", "2 / 2", "75.00%", "79.00%", "74.00%", "80.00%", "+1.00", "-1.00"]
    assert rows["moco_v3"][2:5] == ["1", "71.00%", "72.00%"] and rows["moco_v3"][5:] == ["-"] * 4
    pixels = next(r for name, r in rows.items() if name.startswith("raw pixels"))
    assert "81.40%" in pixels[0] and pixels[3:5] == ["81.92%", "83.38%"]


def test_render_speed_gives_the_ratio_of_each_row():
    vt = load("vision_table")
    text = vt.render_speed(
        [
            {
                "row": "simclr",
                "impl": "speed",
                "ours_images_per_s": 300.0,
                "lightly_images_per_s": 250.0,
                "speed_ratio": 1.2,
            },
            {"row": "simmim", "impl": "speed", "ours_images_per_s": 150.0},
        ]
    )
    rows = table_rows(text)
    assert rows["simclr"] == ["simclr", "300", "250", "1.20x"]
    assert rows["simmim"] == ["simmim", "150", "-", "-"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["simclr", "moco_v2", "byol", "simsiam", "nnclr", "barlow_twins", "vicreg", "swav",
                                  "dino", "mae"])  # fmt: skip
def test_lightly_version_trains_on_tiny_images(name):
    """Each lightly version builds from our recipe's config and takes finite steps (the harness must not rot
    while lightly or our configs change)."""
    vt = load("vision_table")
    vl = load("vision_lightly")
    from ssl_vision.data.images import ImageInfo, ImageTensors

    _, cfg = vt.row_config(name, "train.batch_size=8")
    lightly_name = vt.ROWS[name][2]
    info = ImageInfo(channels=1, image_size=28, mean=[0.3], std=[0.3], num_classes=10)
    pixels = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    images = ImageTensors(pixels)
    run = vl.train_lightly(lightly_name, cfg.method, cfg.train, info, images, total_steps=2)
    assert run.steps == 2 and len(run.step_s) == 2
    assert torch.isfinite(torch.tensor(run.last_loss))
    with torch.no_grad():
        emb = run.model.backbone(torch.randn(3, 1, 28, 28))
    assert emb.shape[0] == 3 and emb.ndim == 2


CHECK_ARMS = """
import sys
sys.path.insert(0, sys.argv[1])
import torch
from PIL import Image
import vision_vicreg_views as vv
import vision_lightly as vl
import vision_table as vt
from ssl_core.train.data import PretextDataset
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.vicreg import VICReg, VICRegConfig
from ssl_vision.transforms import views

info = ImageInfo(channels=1, image_size=28, mean=[0.3], std=[0.3], num_classes=10)
x = torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
_, cfg = vt.row_config("vicreg")
before = PretextDataset([x], VICReg(VICRegConfig(), info).pretext())
assert torch.equal(before[(0, 7)][0], before[(0, 7)][0])  # reseeded per sample: the same views twice

vv.patch("lightly-views")
out = VICReg(VICRegConfig(), info).pretext()(x)
assert isinstance(VICReg(VICRegConfig(), info).pretext(), vv.PILViews)
from ssl_vision.methods.byol import BYOL, BYOLConfig
assert isinstance(BYOL(BYOLConfig(), info).pretext(), vv.PILViews)  # the same pair for the byol row
assert len(out) == 2 and all(v.shape == (1, 28, 28) and v.dtype == torch.float32 for v in out)

vv.patch("selfsup-views")
model = vl.LightlyVICReg(cfg.method, info, 1, cfg.train)
assert isinstance(model.transform, vv.TensorViews)
out = model.transform(Image.fromarray(x[0].numpy(), mode="L"))
assert len(out) == 2 and all(v.shape == (1, 28, 28) and v.dtype == torch.float32 for v in out)
_, byol_cfg = vt.row_config("byol")
byol_model = vl.LightlyBYOL(byol_cfg.method, info, 1, byol_cfg.train)
assert isinstance(byol_model.transform, vv.TensorViews)

def blurs(cls):  # the blur ops inside the RandomApply wrappers of a view that always blurs
    t = views.view_transform(views.ViewConfig(blur_prob=1.0), info)
    return [op.transforms[0] for op in t.transforms if hasattr(op, "transforms") and isinstance(op.transforms[0], cls)]

(pil,) = blurs(views.GaussianBlur)  # the default: PIL's blur
assert type(pil) is views.GaussianBlur
vv.patch("reflect-blur")  # torchvision's, at +-3 sigma
(tv,) = blurs(vv.v2.GaussianBlur)
assert type(tv) is vv.v2.GaussianBlur and tuple(tv.kernel_size) == (13, 13)
vv.patch("blur3")  # torchvision's, with the first runs' kernel
(tv3,) = blurs(vv.v2.GaussianBlur)
assert type(tv3) is vv.v2.GaussianBlur and tuple(tv3.kernel_size) == (3, 3)
vv.patch("none")

stats = vv.pair_statistics(torch.rand(5, 2, 28, 28))
assert stats.shape == (5, len(vv.STAT_NAMES)) and torch.isfinite(stats).all()

from ssl_vision.models.resnet import ResNet, ResNetConfig
one_pass = ResNet.forward
net = ResNet(ResNetConfig(width=16, in_channels=1))
xx = torch.randn(8, 1, 28, 28)
xx[4:] += 3  # the second "view" of the batch has other statistics
vv.patch("per-view")
torch.testing.assert_close(net(xx), torch.cat([one_pass(net, xx[:4]), one_pass(net, xx[4:])]))  # views apart
assert not torch.allclose(net(xx), one_pass(net, xx), atol=1e-3)
net.eval()
torch.testing.assert_close(net(xx), one_pass(net, xx))  # probes embed in one pass, as before

from ssl_vision.methods.byol import BYOL, BYOLConfig
from ssl_core.losses import negative_cosine
byol = BYOL(BYOLConfig(), info).train()
v1, v2 = torch.randn(6, 1, 28, 28), torch.randn(6, 1, 28, 28) + 2
joint = BYOL.forward(byol, (v1, v2)).loss
vv.patch("per-view-all")
p1, p2 = (byol.predictor(byol.projector(byol.backbone(v))) for v in (v1, v2))
z1, z2 = (byol.target.module["projector"](byol.target.module["backbone"](v)) for v in (v1, v2))
apart = 4 + 2 * negative_cosine(p1, z2) + 2 * negative_cosine(p2, z1)
torch.testing.assert_close(byol((v1, v2)).loss, apart)  # every network, heads included, sees one view per pass
assert not torch.allclose(joint, apart)

def moved_halfway(before, twin, online):  # EMA with momentum 0.5: each twin parameter halfway to the online one
    for b, t, o in zip(before, twin.parameters(), online.parameters(), strict=True):
        torch.testing.assert_close(t, 0.5 * b + 0.5 * o)

vv.patch("selfsup-model")  # lightly's loop trains our BYOL module
m = vl.LIGHTLY_METHODS["byol"](byol_cfg.method, info, 3, byol_cfg.train).train()
assert isinstance(m.method, BYOL) and m.backbone is m.method.backbone
assert isinstance(m.transform, vl.BYOLTransform)
with torch.no_grad():
    for q in m.method.backbone.parameters():
        q.add_(1.0)  # the online network moves away from its target
target = m.method.target.module["backbone"]
before = [q.clone() for q in target.parameters()]
loss = m.training_loss([v1, v2], 1)  # lightly's cosine momentum at step 1 of 3: 0.5 of the way 0.99 -> 1
m_1 = vl.cosine_schedule(1, 3, byol_cfg.train.ema_momentum, byol_cfg.train.ema_momentum_end)
for b, t, o in zip(before, target.parameters(), m.method.backbone.parameters(), strict=True):
    torch.testing.assert_close(t, m_1 * b + (1 - m_1) * o)  # the update comes before the step's forward
torch.testing.assert_close(loss, m.method((v1, v2)).loss)

vv.patch("lightly-model")  # our trainer trains lightly's BYOL model
b = BYOL(BYOLConfig(), info).train()
assert isinstance(b.lightly, vl.LightlyBYOL) and b.backbone is b.lightly.backbone
assert not any(k.startswith("backbone.") for k in b.state_dict())  # saved once, under lightly.
torch.testing.assert_close(b((v1, v2)).loss, b.lightly.loss((v1, v2)))
with torch.no_grad():
    for q in b.backbone.parameters():
        q.add_(1.0)
before = [q.clone() for q in b.lightly.backbone_momentum.parameters()]
b.after_optimizer_step(0, {"ema_momentum": 0.5})  # the trainer's momentum, not lightly's schedule
moved_halfway(before, b.lightly.backbone_momentum, b.backbone)

vv.patch("unseeded")
after = PretextDataset([x], VICReg(VICRegConfig(), info).pretext())
assert not torch.equal(after[(0, 7)][0], after[(0, 7)][0])  # the running generator: new views each call

assert "train.channels_last=false" not in vt.OURS_SET
vv.patch("nchw")  # our trainer in torch's default layout, as lightly's loop
assert vt.OURS_SET[-1] == "train.channels_last=false"

rows = vv.seeding(300)  # reseeded and running draws of the same parameters, one KS p-value each
assert len(rows) == 21 and all(0 <= p <= 1 for *_, p in rows)
crop = {name: (a, b) for name, a, b, _ in rows}["view 1 height"]
assert all(5 <= v <= 28 for v in crop)  # crops of 0.2-1 of the 28-pixel image

k = vv.kernels(20)  # the same parameters through tensor and PIL kernels: brightness and solarisation agree
assert set(k) == {"crop", "brightness", "contrast", "solarize"}
assert k["brightness"][2] == 0 and k["solarize"][2] == 0 and k["crop"][2] <= 2 and k["contrast"][2] <= 1
print("arms ok")
"""


def test_vicreg_view_arms_each_change_one_thing():
    """The diagnosis script's arms (benchmarks/vision_vicreg_views.py) patch what they say: ours on lightly's
    PIL views, lightly on our tensor views, torchvision's blur with the old 3-pixel kernel or at +-3 sigma,
    each view encoded in its own pass (the ResNet, or BYOL's every network), our BYOL module in lightly's
    loop and lightly's BYOL model in our trainer (each with its momentum update), views without
    per-sample reseeding, and our trainer without channels-last (in a subprocess, so the patches stay out of
    this process); the two-sample test's statistics have their documented shape, and the seeding
    comparison gives one p-value per random parameter of BYOL's pair, and the kernels' comparison finds
    brightness and solarisation equal and crops and contrast within two grey levels."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", CHECK_ARMS, str(BENCH)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "arms ok" in done.stdout


def test_default_runs_harness_records_a_run_and_tables_it(tmp_path):
    """vision_defaults.py runs a recipe in a child process and records its minutes, peak memory, steps and
    probes (here a smoke run: 3 steps on scikit-learn's digits, so it is recorded as smoke and kept out of
    the table); the table renders the latest real record of each recipe in the recipes' order."""
    vd = load("vision_defaults")
    smoke = ["data.name=digits", "train.max_steps=3", "train.batch_size=32", "probe.train_size=500"]
    rec = vd.run_one("simclr", tmp_path / "runs", tmp_path / "r.jsonl", smoke=smoke)
    assert rec["smoke"] and rec["steps"] == 3 and rec["stop_reason"] == "completed"
    assert 0.05 < rec["peak_rss_gib"] < 16 and rec["wall_minutes"] > 0 and rec["samples_per_s"] > 0
    assert 0 <= rec["metrics"]["pretrained"]["knn_top1"] <= 1 and "linear_top1" in rec["metrics"]["random_init"]
    assert (tmp_path / "runs" / "simclr" / "plots" / "embeddings.png").exists()
    with pytest.raises(SystemExit, match="not empty"):  # a second run never mixes into the first's folder
        vd.run_one("simclr", tmp_path / "runs", tmp_path / "r.jsonl", smoke=smoke)
    real = {**rec, "smoke": False, "steps": 468, "batch_size": 256}
    text = vd.render([real, {**rec, "recipe": "byol", "smoke": False}, rec, {**real, "steps": 234}])
    rows = [line.split(" | ") for line in text.splitlines()[2:]]
    assert [r[0] for r in rows] == ["| vision/simclr", "| vision/byol"]  # recipes' order, smoke left out
    assert rows[0][1] == "234 (1.00)"  # the latest record of simclr
    assert rows[0][2] == "minute cap" and vd.render([real]).splitlines()[2].split(" | ")[2] == "2 epochs"

"""Diagnosis of the view pipelines behind the vision table's VICReg and BYOL rows: is a gap in the views?

With a 3-pixel blur kernel, ours' VICReg scored 1.5 points of kNN below lightly's at the table's budget (5
seeds each, every seed of ours below every seed of lightly's), with the same backbone, expander, loss,
optimizer and schedule; with torchvision's blur at +-3 sigma, BYOL trailed by 1.07. This script reruns a row
with one thing changed, and is otherwise ``vision_table.py``::

    uv run python benchmarks/vision_vicreg_views.py ARM run vicreg|byol --impl IMPL --seed S \
        --results benchmarks/results/vicreg_views/ARM.jsonl

ARM (each changes one thing; the record's ``impl`` stays ``ours`` / ``lightly``, so keep a results file per
arm, or read the per-seed lines):

- ``none``: nothing (the table's run);
- ``lightly-views`` (``--impl ours``): ours trained on lightly's PIL views (``BYOLTransform`` built from the
  same ``ViewConfig`` by ``vision_lightly.byol_transform``), drawn inside our per-sample seeding; this arm
  also runs the ``byol`` row, whose views are the same pair (``... lightly-views run byol --impl ours``);
- ``selfsup-views`` (``--impl lightly``, rows ``vicreg`` and ``byol``): lightly's model and loop on our
  uint8-tensor views;
- ``blur3`` (``--impl ours``): our views with the blur of the table's first runs (2026-11-28): torchvision's,
  with a kernel of 10% of the side (3 px at 28), which cannot realise sigma up to 2 px;
- ``reflect-blur`` (``--impl ours``): our views with the blur of the runs of 2026-12-02 morning: torchvision's,
  with a kernel of +-3 sigma (13 px at 28), which reflects the image at its border; the default is PIL's
  ``GaussianBlur(radius=sigma)``, as lightly's views (``ssl_vision.transforms.views.GaussianBlur``; an arm
  ``pil-blur`` tested it before it was the default);
- ``per-view`` (``--impl ours``, rows ``vicreg`` and ``byol``): not the views but how they are encoded: the
  ResNet encodes each view of a training batch in its own pass, so BatchNorm normalises each view apart
  (as lightly's examples and the papers' code do), instead of both views in one pass;
- ``per-view-all`` (``--impl ours``, row ``byol``): BYOL's online and target networks, projector and predictor
  included, encode each view in its own pass, so every BatchNorm normalises each view apart, as lightly's
  example and the paper's code (``per-view`` only splits the ResNet's pass);
- ``selfsup-model`` (``--impl lightly``, row ``byol``): lightly's loop and PIL views train our BYOL module
  (:class:`SelfsupBYOLInLightlyLoop`), to split BYOL's gap between the model and the loop;
- ``lightly-model`` (``--impl ours``, row ``byol``): our trainer and views train lightly's BYOL model
  (lightly's heads, loss and ``update_momentum``, with our trainer's momentum schedule);
- ``unseeded`` (``--impl ours``): our views drawn from the running generator instead of reseeding torch's
  generator per sample and epoch;
- ``nchw`` (``--impl ours``): our trainer with ``train.channels_last=false``: tensors and weights in torch's
  default layout, as in lightly's loop (channels-last changes only the rounding of the convolutions' and
  BatchNorm's gradients, by about 1% of their size at initialisation, against 0.4% for the default
  layout, both against float64).

Every run uses one thread (the accuracies count steps, not seconds).

``kernels`` puts the same random crop, brightness, contrast and solarisation through torchvision's kernels
on uint8 tensors (ours) and on PIL images (lightly's), for 3,000 training images, and reports how many
pixels differ and by how much. ``seeding [--pairs N]`` compares the random parameters (crop, flip, jitter,
blur, solarisation) of ``N`` BYOL view pairs (default 20,000) drawn under the trainer's per-sample
reseeding with those of a running generator,
parameter by parameter (Kolmogorov-Smirnov).

``ARM twosample [--pairs N]`` asks instead whether the views themselves differ: it draws ``N`` view pairs
(default 10,000) of BYOL's pair from our pipeline (with the arm's change) and ``N`` from lightly's, each from
other Fashion-MNIST training images, and reports the 5-fold accuracy of a gradient-boosted classifier that
tells the two apart from 33 statistics of a pair (per view: mean, spread, gradients, Laplacian, quantiles,
the step between the two outermost rows and columns; the two views' correlation). 50% means the statistics
do not tell them apart. Findings: ``packages/ssl-vision/README.md``.
"""

from __future__ import annotations

import os
import sys
import types

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402
from torchvision.transforms import v2  # noqa: E402
from torchvision.transforms.v2 import functional as TF  # noqa: E402

ARMS = (
    "none",
    "lightly-views",
    "selfsup-views",
    "blur3",
    "reflect-blur",
    "per-view",
    "per-view-all",
    "unseeded",
    "selfsup-model",
    "lightly-model",
    "nchw",
)


class PILViews:
    """Our pretext interface (uint8 ``(1, H, W)`` tensor -> tuple of views) over a lightly PIL transform."""

    def __init__(self, transform) -> None:
        self.transform = transform

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.transform(Image.fromarray(x[0].numpy(), mode="L")))


class TensorViews:
    """lightly's transform interface (PIL image -> list of views) over our tensor :class:`MultiView`."""

    def __init__(self, views) -> None:
        self.views = views

    def __call__(self, img: Image.Image) -> list[torch.Tensor]:
        return list(self.views(TF.pil_to_tensor(img)))


class SelfsupBYOLInLightlyLoop(nn.Module):
    """Our BYOL module (heads, loss, :class:`~ssl_core.teacher.EMATeacher`) as a model of lightly's loop
    (``vision_lightly.train_lightly``): lightly's PIL views, its DataLoader, optimizer groups and schedules,
    and its momentum update before each step's forward, with lightly's cosine momentum schedule."""

    def __init__(self, cfg, info, total_steps: int, train) -> None:
        import vision_lightly

        from ssl_vision.methods.byol import BYOL

        super().__init__()
        self.method = BYOL(cfg, info)
        self.backbone = self.method.backbone  # what the probes read (the same module, registered once)
        self.transform = vision_lightly.byol_transform(cfg.views, info)
        self.total_steps, self.ema = total_steps, (train.ema_momentum, train.ema_momentum_end)

    def training_loss(self, views, step: int) -> torch.Tensor:
        from lightly.utils.scheduler import cosine_schedule

        from ssl_vision.methods.common import ema_update

        m = cosine_schedule(step, self.total_steps, *self.ema)
        ema_update(self.method.target, m, backbone=self.method.backbone, projector=self.method.projector)
        return self.method(tuple(views)).loss


def patch(arm: str) -> None:
    """Apply ``arm``'s one change to the methods' classes / view code before the table runs."""
    import vision_lightly

    import ssl_core.train.data as data
    import ssl_vision.methods.vicreg as vicreg
    import ssl_vision.transforms.views as views

    if arm == "none":
        return
    if arm == "lightly-views":
        import ssl_vision.methods.byol as byol

        for cls in (vicreg.VICReg, byol.BYOL):
            cls.pretext = lambda self: PILViews(vision_lightly.byol_transform(self.config.views, self.info))
    elif arm == "selfsup-views":
        import ssl_vision.methods.byol as byol

        for model, method in ((vision_lightly.LightlyVICReg, vicreg.VICReg), (vision_lightly.LightlyBYOL, byol.BYOL)):

            def lightly_init(self, cfg, info, *args, init=model.__init__, method=method, **kwargs):
                init(self, cfg, info, *args, **kwargs)
                self.transform = TensorViews(method.pretext(types.SimpleNamespace(config=cfg, info=info)))

            model.__init__ = lightly_init
    elif arm in ("blur3", "reflect-blur"):  # torchvision's blur, which reflects the image at its border
        views.GaussianBlur = v2.GaussianBlur
        if arm == "blur3":
            views.blur_kernel_size = lambda sigma_max, size: max(3, (size // 10) | 1)
    elif arm == "per-view":
        from ssl_vision.models.resnet import ResNet

        one_pass = ResNet.forward

        def per_view(self, x: torch.Tensor) -> torch.Tensor:  # training batches are (view 1; view 2)
            return torch.cat([one_pass(self, h) for h in x.chunk(2)]) if self.training else one_pass(self, x)

        ResNet.forward = per_view
    elif arm == "per-view-all":  # BYOL's online and target networks, heads included, see one view per pass
        import ssl_vision.methods.byol as byol

        def forward(self, batch):
            x1, x2 = batch[:2]
            p1, p2 = (self.predictor(self.projector(self.backbone(x))) for x in (x1, x2))
            with torch.no_grad():
                t = self.target.module
                z1, z2 = (t["projector"](t["backbone"](x)) for x in (x1, x2))
            loss = (2 + 2 * byol.negative_cosine(p1, z2)) + (2 + 2 * byol.negative_cosine(p2, z1))
            return byol.MethodOutput(loss, {})

        byol.BYOL.forward = forward
    elif arm == "selfsup-model":  # lightly's loop and views train our BYOL module
        import ssl_vision.methods.byol as byol

        vision_lightly.LIGHTLY_METHODS["byol"] = SelfsupBYOLInLightlyLoop
    elif arm == "lightly-model":  # our trainer and views train lightly's BYOL model
        import ssl_vision.methods.byol as byol

        def init(self, config, info):
            byol.Method.__init__(self)
            self.config, self.info = config, info
            # total_steps / train only set lightly's own momentum schedule, unused here: our trainer's
            # values["ema_momentum"] moves the momentum twins after each step
            self.lightly = vision_lightly.LightlyBYOL(config, info, 1, vision_lightly.TrainConfig())

        def after_optimizer_step(self, step, values):
            for module, twin in self.lightly.pairs:
                vision_lightly.update_momentum(module, twin, m=values["ema_momentum"])

        byol.BYOL.__init__ = init
        # what embed() and the probes read; a property, so the module is not registered (and saved) twice
        byol.BYOL.backbone = property(lambda self: self.lightly.backbone)
        byol.BYOL.forward = lambda self, batch: byol.MethodOutput(self.lightly.loss(batch), {})
        byol.BYOL.after_optimizer_step = after_optimizer_step
    elif arm == "unseeded":
        data.PretextDataset.__getitem__ = lambda self, key: self.pretext(self.base[key[0]])
    elif arm == "nchw":  # the trainer without channels-last, as lightly's loop
        import vision_table

        vision_table.OURS_SET.append("train.channels_last=false")
    else:
        raise SystemExit(f"unknown arm {arm!r}: choose one of {', '.join(ARMS)}")


def pair_statistics(pairs: torch.Tensor) -> torch.Tensor:
    """33 statistics of each view pair ``(N, 2, H, W)`` (normalised pixels): per view its mean, standard
    deviation, mean absolute horizontal and vertical gradient and Laplacian, maximum, minimum, share of
    pixels above the minimum, the mean step between the two outermost columns and between the two
    outermost rows, six quantiles; and the correlation of the two views."""
    out = []
    for v in pairs.unbind(1):
        flat = v.flatten(1)
        lap = 4 * v[:, 1:-1, 1:-1] - v[:, :-2, 1:-1] - v[:, 2:, 1:-1] - v[:, 1:-1, :-2] - v[:, 1:-1, 2:]
        lo = flat.min(1).values
        out += [flat.mean(1), flat.std(1), v.diff(dim=2).abs().mean((1, 2)), v.diff(dim=1).abs().mean((1, 2))]
        out += [lap.abs().mean((1, 2)), flat.max(1).values, lo, (flat > lo[:, None] + 1e-3).float().mean(1)]
        out += [(v[:, :, 0] - v[:, :, 1]).abs().mean(1), (v[:, 0, :] - v[:, 1, :]).abs().mean(1)]
        out += list(flat.quantile(torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9, 0.99]), dim=1))
    a, b = (p.flatten(1) - p.flatten(1).mean(1, keepdim=True) for p in pairs.unbind(1))
    out.append((a * b).mean(1) / (a.std(1, correction=0) * b.std(1, correction=0) + 1e-6))
    return torch.stack(out, 1)


STAT_NAMES = [
    f"view {i} {n}"
    for i in (1, 2)
    for n in (
        "mean",
        "std",
        "|dx|",
        "|dy|",
        "|laplacian|",
        "max",
        "min",
        "share > min",
        "border column step",
        "border row step",
        "q10",
        "q25",
        "q50",
        "q75",
        "q90",
        "q99",
    )  # fmt: skip
] + ["pair correlation"]


def twosample(arm: str, pairs: int = 10_000, seed: int = 0) -> dict:
    """Draw ``pairs`` BYOL view pairs from our pipeline (with ``arm`` applied) and as many from lightly's, on
    disjoint random training images, and score how well a classifier tells them apart (5-fold accuracy)."""
    import vision_lightly
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import cross_val_score

    from ssl_vision.data.images import VisionDataConfig, load_data
    from ssl_vision.methods.byol import BYOL, BYOLConfig

    patch(arm)
    bundle = load_data(VisionDataConfig(name="fashion_mnist"))
    cfg = BYOLConfig()
    ours = BYOL(cfg, bundle.info).pretext()
    theirs = vision_lightly.byol_transform(cfg.views, bundle.info)
    torch.manual_seed(seed)
    np.random.seed(seed)  # lightly's blur and solarisation draw from numpy
    images = torch.randperm(len(bundle.train), generator=torch.Generator().manual_seed(seed + 1))[: 2 * pairs]
    drawn, labels = [], []
    for j, i in enumerate(images.tolist()):
        x = bundle.train[i]
        views = ours(x) if j % 2 == 0 else theirs(Image.fromarray(x[0].numpy(), mode="L"))
        drawn.append(torch.stack([v[0] for v in views]))
        labels.append(j % 2)
    stats, y = pair_statistics(torch.stack(drawn)).numpy(), np.array(labels)
    acc = cross_val_score(HistGradientBoostingClassifier(max_iter=200, random_state=0), stats, y, cv=5)
    means = {n: (float(stats[y == 0, k].mean()), float(stats[y == 1, k].mean())) for k, n in enumerate(STAT_NAMES)}
    return {"arm": arm, "pairs": pairs, "accuracy": float(acc.mean()), "fold_accuracy": acc.tolist(), "means": means}


def seeding(pairs: int = 20_000) -> list[tuple[str, float, float, float]]:
    """The random parameters of ``pairs`` BYOL view pairs, drawn under the trainer's per-sample reseeding
    (``sample_seed(0, 0, i)``) and from one running generator, compared parameter by parameter: for each view
    the crop's top, left, height and width, the flip, whether the colour jitter applies, its brightness and
    contrast factors and whether brightness comes first, the blur's sigma and the solarisation. Returns
    ``(name, mean reseeded, mean running, two-sample Kolmogorov-Smirnov p)`` per parameter."""
    from scipy.stats import ks_2samp

    from ssl_core.train.data import sample_seed
    from ssl_vision.data.images import ImageInfo
    from ssl_vision.transforms.views import GaussianBlur, byol_views, view_transform

    drawn: dict = {}
    for cls, key in ((v2.RandomResizedCrop, "crop"), (v2.RandomHorizontalFlip, "flip"), (v2.ColorJitter, "jitter"),
                     (GaussianBlur, "blur"), (v2.RandomSolarize, "solarize")):  # fmt: skip

        def make_params(self, flat, orig=cls.make_params, key=key):
            drawn[key] = orig(self, flat)
            return drawn[key]

        cls.make_params = make_params
    info = ImageInfo(channels=1, image_size=28, mean=[0.5], std=[0.25])
    views, image = [view_transform(v, info) for v in byol_views()], torch.zeros(1, 28, 28, dtype=torch.uint8)
    names = ["top", "left", "height", "width", "flip", "jitter", "brightness", "contrast", "brightness first"]
    names += ["blur sigma", "solarize"]

    def params() -> list[float]:
        c, j = drawn["crop"], drawn.get("jitter")
        nan = float("nan")
        out = [c["top"], c["left"], c["height"], c["width"], "flip" in drawn, j is not None]
        out += [j["brightness_factor"], j["contrast_factor"], list(j["fn_idx"]).index(0) == 0] if j else [nan] * 3
        return [float(v) for v in out + [drawn["blur"]["sigma"][0] if "blur" in drawn else nan, "solarize" in drawn]]

    def draw(reseed: bool) -> np.ndarray:
        rows = []
        for i in range(pairs):
            if reseed:
                torch.default_generator.manual_seed(sample_seed(0, 0, i))
            row = []
            for t in views:
                drawn.clear()
                t(image)
                row.append(params())
            rows.append(row)
        return np.array(rows)  # (pairs, 2, len(names))

    torch.manual_seed(1)  # the running generator's start
    b = draw(False)
    a = draw(True)
    out = []
    for v in range(2):
        for k, name in enumerate(names):
            x, y = a[:, v, k], b[:, v, k]
            x, y = x[~np.isnan(x)], y[~np.isnan(y)]
            if len(x) > 10 and len(y) > 10 and (x.std() > 0 or y.std() > 0):
                out.append((f"view {v + 1} {name}", float(x.mean()), float(y.mean()), float(ks_2samp(x, y).pvalue)))
    return out


def kernels(images: int = 3000) -> dict[str, tuple[float, float, int]]:
    """The same random crop, brightness, contrast and solarisation through torchvision's kernels on uint8
    tensors (our views) and on PIL images (lightly's), for ``images`` Fashion-MNIST training images: per
    operation the share of pixels that differ, the mean difference (grey levels) and the largest."""
    from torchvision.transforms import RandomResizedCrop

    from ssl_vision.data.images import VisionDataConfig, load_data
    from ssl_vision.transforms.views import ViewConfig

    train = load_data(VisionDataConfig(name="fashion_mnist")).train
    g = torch.Generator().manual_seed(0)
    diffs: dict[str, list[torch.Tensor]] = {"crop": [], "brightness": [], "contrast": [], "solarize": []}

    def pil(x: torch.Tensor) -> Image.Image:
        return Image.fromarray(x[0].numpy(), mode="L")

    def diff(a: torch.Tensor, b: Image.Image) -> torch.Tensor:
        return a.int() - torch.from_numpy(np.array(b))[None].int()

    view = ViewConfig()
    for _ in range(images):
        x = train[int(torch.randint(len(train), (1,), generator=g))]
        with torch.random.fork_rng(devices=[]):  # torchvision's crop sampler draws from the global generator
            torch.manual_seed(int(torch.randint(2**31, (1,), generator=g)))
            i, j, h, w = RandomResizedCrop.get_params(x, view.crop_scale, view.crop_ratio)
        a = TF.resized_crop(x, i, j, h, w, [28, 28], antialias=True)
        diffs["crop"].append(diff(a, TF.resized_crop(pil(x), i, j, h, w, [28, 28], antialias=True)))
        fb, fc = (float(torch.empty(1).uniform_(0.6, 1.4, generator=g)) for _ in range(2))
        diffs["brightness"].append(diff(TF.adjust_brightness(a, fb), TF.adjust_brightness(pil(a), fb)))
        diffs["contrast"].append(diff(TF.adjust_contrast(a, fc), TF.adjust_contrast(pil(a), fc)))
        diffs["solarize"].append(diff(TF.solarize(a, 128), TF.solarize(pil(a), 128)))
    out = {}
    for name, d in diffs.items():
        d = torch.stack(d).float()
        out[name] = (float((d != 0).float().mean()), float(d.mean()), int(d.abs().max()))
    return out


def main(argv: list[str]) -> None:
    if argv[:1] == ["kernels"]:
        print("the same parameters through torchvision's tensor kernels and PIL's (uint8 grey levels):")
        for name, (share, mean, worst) in kernels().items():
            print(f"  {name:10s} pixels that differ {share:6.2%}, mean difference {mean:+.4f}, largest {worst}")
        return
    if argv[:1] == ["seeding"]:
        n = int(argv[argv.index("--pairs") + 1]) if "--pairs" in argv else 20_000
        rows = seeding(n)
        print(f"{n:,} BYOL view pairs' random parameters, reseeded per sample / running generator (KS p):")
        for name, x, y, p in rows:
            print(f"  {name:24s} {x:8.4f} / {y:8.4f}   p = {p:.3f}")
        print(f"smallest p: {min(r[3] for r in rows):.3f} of {len(rows)} parameters")
        return
    if not argv or argv[0] not in ARMS:
        raise SystemExit(
            f"usage: vision_vicreg_views.py {{{','.join(ARMS)}}} run vicreg|byol --impl ... | twosample [--pairs N] "
            "(see the docstring)"
        )
    torch.set_num_threads(1)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if argv[1:2] == ["twosample"]:
        n = int(argv[argv.index("--pairs") + 1]) if "--pairs" in argv else 10_000
        res = twosample(argv[0], n)
        print(
            f"{res['arm']}: {n:,} pairs each; the classifier tells ours from lightly's views {res['accuracy']:.1%} of"
        )
        print("the time (50%: not at all); the statistics' means, ours / lightly's:")
        for name, (a, b) in res["means"].items():
            print(f"  {name:24s} {a:+.4f} / {b:+.4f}")
        return
    patch(argv[0])
    import vision_table

    vision_table.main(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])

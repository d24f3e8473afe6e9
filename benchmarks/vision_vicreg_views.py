"""Diagnosis of the VICReg row of the vision table: which side of the gap do the views sit on?

With a 3-pixel blur kernel, ours' VICReg scored 1.5 points of kNN below lightly's at the table's budget (5
seeds each, every seed of ours below every seed of lightly's), with the same backbone, expander, loss,
optimizer and schedule. This script reruns the row with one thing changed, the view pipeline, and is
otherwise ``vision_table.py``::

    uv run python benchmarks/vision_vicreg_views.py ARM run vicreg --impl IMPL --seed S \
        --results benchmarks/results/vicreg_views.jsonl

ARM (each changes one thing; the record's ``impl`` stays ``ours`` / ``lightly``, so keep a results file per
arm, or read the per-seed lines):

- ``lightly-views`` (``--impl ours``): ours trained on lightly's PIL views (``BYOLTransform`` built from the
  same ``ViewConfig`` by ``vision_lightly.byol_transform``), drawn inside our per-sample seeding; this arm
  also runs the ``byol`` row, whose views are the same pair (``... lightly-views run byol --impl ours``);
- ``selfsup-views`` (``--impl lightly``): lightly's model and loop on our uint8-tensor views;
- ``blur3`` (``--impl ours``): our views with the blur kernel of the table's first runs, 10% of the side (3 px
  at 28), which cannot realise sigma up to 2 px; the default kernel holds +-3 sigma (13 px at 28), as PIL's
  ``GaussianBlur(radius=sigma)`` in lightly's views (an arm ``blur13`` ran before it was the default);
- ``pil-blur`` (``--impl ours``): our views with PIL's blur (``ImageFilter.GaussianBlur(radius=sigma)``, as
  lightly's) in place of torchvision's, sigma drawn as ours;
- ``per-view`` (``--impl ours``, rows ``vicreg`` and ``byol``): not the views but how they are encoded: the
  ResNet encodes each view of a training batch in its own pass, so BatchNorm normalises each view apart
  (as lightly's examples and the papers' code do), instead of both views in one pass;
- ``unseeded`` (``--impl ours``): our views drawn from the running generator instead of reseeding torch's
  generator per sample and epoch.

Every run uses one thread (the accuracies count steps, not seconds). Findings: ``packages/ssl-vision/README.md``.
"""

from __future__ import annotations

import os
import sys
import types

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from PIL import Image, ImageFilter  # noqa: E402
from torchvision.transforms import v2  # noqa: E402
from torchvision.transforms.v2 import functional as TF  # noqa: E402

ARMS = ("lightly-views", "selfsup-views", "blur3", "pil-blur", "per-view", "unseeded")


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


class PILBlur:
    """Stands in for ``v2.GaussianBlur(kernel, sigma)`` on a uint8 ``(1, H, W)`` tensor: PIL's Gaussian blur
    with radius sigma, sigma drawn uniformly from ``sigma`` (lightly's blur, inside our view pipeline)."""

    def __init__(self, kernel, sigma) -> None:
        self.sigma = sigma

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        s = float(torch.empty(1).uniform_(*self.sigma))
        img = Image.fromarray(x[0].numpy(), mode="L").filter(ImageFilter.GaussianBlur(radius=s))
        return TF.pil_to_tensor(img)


def patch(arm: str) -> None:
    """Apply ``arm``'s one change to the VICReg classes / view code before the table runs."""
    import vision_lightly

    import ssl_core.train.data as data
    import ssl_vision.methods.vicreg as vicreg
    import ssl_vision.transforms.views as views

    if arm == "lightly-views":
        import ssl_vision.methods.byol as byol

        for cls in (vicreg.VICReg, byol.BYOL):
            cls.pretext = lambda self: PILViews(vision_lightly.byol_transform(self.config.views, self.info))
    elif arm == "selfsup-views":
        init = vision_lightly.LightlyVICReg.__init__

        def lightly_init(self, cfg, info, *args, **kwargs):
            init(self, cfg, info, *args, **kwargs)
            self.transform = TensorViews(vicreg.VICReg.pretext(types.SimpleNamespace(config=cfg, info=info)))

        vision_lightly.LightlyVICReg.__init__ = lightly_init
    elif arm == "blur3":
        views.blur_kernel_size = lambda sigma_max, size: max(3, (size // 10) | 1)
    elif arm == "pil-blur":  # the views module sees torchvision's v2 with another GaussianBlur
        shim = types.SimpleNamespace(**{k: getattr(v2, k) for k in dir(v2) if not k.startswith("_")})
        shim.GaussianBlur = PILBlur
        views.v2 = shim
    elif arm == "per-view":
        from ssl_vision.models.resnet import ResNet

        one_pass = ResNet.forward

        def per_view(self, x: torch.Tensor) -> torch.Tensor:  # training batches are (view 1; view 2)
            return torch.cat([one_pass(self, h) for h in x.chunk(2)]) if self.training else one_pass(self, x)

        ResNet.forward = per_view
    elif arm == "unseeded":
        data.PretextDataset.__getitem__ = lambda self, key: self.pretext(self.base[key[0]])
    else:
        raise SystemExit(f"unknown arm {arm!r}: choose one of {', '.join(ARMS)}")


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in ARMS:
        raise SystemExit(
            f"usage: vision_vicreg_views.py {{{','.join(ARMS)}}} run vicreg|byol --impl ... (see the docstring)"
        )
    torch.set_num_threads(1)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    patch(argv[0])
    import vision_table

    vision_table.main(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])

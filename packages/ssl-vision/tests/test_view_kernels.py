"""The batched view kernels against the per-image operations they replace (torchvision's and PIL's), and the
batched views against the per-image pipeline: equal, bit for bit, under the same seeds."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter
from torchvision.transforms.v2 import functional as TF

from ssl_vision.data.images import ImageInfo
from ssl_vision.transforms import MultiCropConfig, MultiView, View, ViewConfig, byol_views, mae_view
from ssl_vision.transforms import kernels as K


def _images(n, channels, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8)


def _boxes(n, size, g, low=1):
    """Random crop boxes inside a ``size`` x ``size`` image, of every shape from ``low`` pixels."""
    h = torch.randint(low, size + 1, (n,), generator=g)
    w = torch.randint(low, size + 1, (n,), generator=g)
    top = (torch.rand(n, generator=g) * (size + 1 - h)).long()
    left = (torch.rand(n, generator=g) * (size + 1 - w)).long()
    return top, left, h, w


@pytest.mark.parametrize("channels,size,out", [(1, 28, 28), (3, 24, 24), (1, 28, 12), (3, 20, 32)])
def test_resized_crop_is_torchvisions_uint8_resize_bit_for_bit(channels, size, out):
    """Up- and down-scaling crops of every shape, mirrored or not, equal torchvision's resized_crop on uint8
    (torch's fixed-point kernel, which a float resize rounded afterwards differs from on ~16% of pixels)."""
    g = torch.Generator().manual_seed(1)
    x = _images(200, channels, size)
    top, left, h, w = _boxes(200, size, g)
    flip = torch.rand(200, generator=g) < 0.5
    ours = K.resized_crop(x, top, left, h, w, flip, out)
    ref = []
    for i in range(200):
        v = TF.resized_crop(x[i], int(top[i]), int(left[i]), int(h[i]), int(w[i]), [out, out], antialias=True)
        ref.append(TF.horizontal_flip(v) if flip[i] else v)
    assert ours.dtype == torch.float32 and ours.shape == (200, channels, out, out)
    assert torch.equal(ours, torch.stack(ref).float())


@pytest.mark.parametrize("channels", [1, 3])
def test_colour_kernels_are_torchvisions_with_one_factor_per_sample(channels):
    g = torch.Generator().manual_seed(2)
    x = _images(150, channels, 20, seed=3)
    f = torch.empty(150).uniform_(0.0, 2.0, generator=g)
    hue = torch.empty(150).uniform_(-0.5, 0.5, generator=g)
    cases = [(K.adjust_brightness, TF.adjust_brightness, f), (K.adjust_contrast, TF.adjust_contrast, f),
             (K.adjust_saturation, TF.adjust_saturation, f), (K.adjust_hue, TF.adjust_hue, hue)]  # fmt: skip
    for ours, theirs, factor in cases:
        ref = torch.stack([theirs(x[i], float(factor[i])) for i in range(150)]).float()
        assert torch.equal(ours(x.float(), factor), ref), ours.__name__
    assert torch.equal(K.solarize(x.float()), TF.solarize(x, 128).float())
    if channels == 3:
        assert torch.equal(K.rgb_to_grayscale(x.float()), TF.rgb_to_grayscale(x, 3).float())


def test_color_jitter_applies_each_samples_order_and_skips_the_others():
    g = torch.Generator().manual_seed(4)
    x = _images(64, 3, 16, seed=5)
    applied = torch.rand(64, generator=g) < 0.7
    order = torch.stack([torch.randperm(4, generator=g) for _ in range(64)])
    factors = torch.stack([torch.empty(64).uniform_(0.6, 1.4, generator=g) for _ in range(3)]
                          + [torch.empty(64).uniform_(-0.1, 0.1, generator=g)], dim=1)  # fmt: skip
    ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    ref = []
    for i in range(64):
        v = x[i]
        if applied[i]:
            for j in order[i].tolist():
                v = ops[j](v, float(factors[i, j]))
        ref.append(v)
    assert torch.equal(K.color_jitter(x.float(), applied, order, factors), torch.stack(ref).float())


@pytest.mark.parametrize("channels,size", [(1, 28), (3, 17), (1, 4)])
def test_gaussian_blur_is_pils_bit_for_bit(channels, size):
    """PIL's GaussianBlur(radius=sigma) on uint8 images, border included, for sigmas whose boxes are narrow,
    wide and wider than the image."""
    x = _images(40, channels, size, seed=6)
    sigma = torch.cat(
        [torch.linspace(0.1, 2.0, 30), torch.tensor([2.5, 3.3, 5.0, 7.7, 12.0, 0.01, 1.0, 1.5, 0.5, 4.0])]
    )
    ours = K.pil_gaussian_blur(x.float(), sigma)
    ref = []
    for i in range(40):
        img = Image.fromarray(x[i, 0].numpy() if channels == 1 else x[i].permute(1, 2, 0).numpy())
        out = torch.from_numpy(np.array(img.filter(ImageFilter.GaussianBlur(radius=float(sigma[i])))))
        ref.append(out[None] if channels == 1 else out.permute(2, 0, 1))
    assert torch.equal(ours, torch.stack(ref).float())


_VIEWS = [ViewConfig(), *byol_views(), mae_view(), MultiCropConfig().local_view,
          ViewConfig(crop_scale=[0.05, 1.0], crop_ratio=[0.3, 3.0], grayscale_prob=0.5, blur_prob=0.5)]  # fmt: skip


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("cfg", _VIEWS, ids=["simclr", "byol1", "byol2", "mae", "local", "wide"])
def test_batched_views_equal_the_per_image_pipeline_under_the_same_seeds(cfg, channels):
    """View.draw makes the per-image pipeline's random draws and View.render its arithmetic: with the same
    seed per image, the batched views are the per-image pipeline's views exactly (so equal in distribution)."""
    size = 28 if channels == 1 else 24
    info = ImageInfo(channels=channels, image_size=size, mean=[0.3] * channels, std=[0.25] * channels)
    view = View(cfg, info)
    x = _images(120, channels, size, seed=7)
    ref, params = [], []
    for i in range(120):
        torch.manual_seed(100 + i)
        ref.append(view.reference(x[i]))
        torch.manual_seed(100 + i)
        params.append(view.draw(x[i]))
    assert torch.equal(view.render(x, torch.tensor(params)), torch.stack(ref))


def test_multiview_collates_its_drawn_views_and_rejects_other_channel_counts():
    info = ImageInfo(channels=1, image_size=28, mean=[0.3], std=[0.25])
    view = View(ViewConfig(), info)
    mv = MultiView([view, view])
    x = _images(5, 1, 28)
    torch.manual_seed(0)
    items = [mv(im) for im in x]
    v1, v2 = mv.collate(items)
    assert v1.shape == v2.shape == (5, 1, 28, 28) and not torch.equal(v1, v2)
    torch.manual_seed(0)
    first = [view.draw(im) for im in x[:1]]
    assert torch.equal(view.render(x[:1], torch.tensor(first)), v1[:1])
    with pytest.raises(ValueError, match="1- or 3-channel"):
        view.render(_images(2, 2, 28), torch.tensor([view.draw(x[0])] * 2))

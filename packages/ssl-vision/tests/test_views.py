import torch

from ssl_core.train.data import PretextDataset
from ssl_vision.data.images import ImageInfo
from ssl_vision.transforms import MultiView, View, ViewConfig, view_transform


def test_shapes_dtype_and_normalisation():
    info = ImageInfo(channels=3, image_size=24, mean=[0.5] * 3, std=[0.25] * 3)
    t = view_transform(ViewConfig(blur_prob=0.5, solarize_prob=0.2), info)
    x = torch.randint(0, 256, (3, 32, 30), dtype=torch.uint8)
    v = t(x)
    assert v.shape == (3, 24, 24) and v.dtype == torch.float32
    assert v.min() >= (0 - 0.5) / 0.25 - 1e-5 and v.max() <= (1 - 0.5) / 0.25 + 1e-5


def _views(multiview, ds, key):
    """The rendered views of one item of a pretext data set."""
    return multiview.collate([ds[key]])


def test_views_are_seeded_and_differ():
    info = ImageInfo(channels=1, image_size=28, mean=[0.3], std=[0.3])
    view = View(ViewConfig(), info)
    mv = MultiView([view, view])
    ds = PretextDataset([torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8)], mv)
    a1, a2 = _views(mv, ds, (0, 5))
    b1, b2 = _views(mv, ds, (0, 5))
    c1, _ = _views(mv, ds, (0, 6))
    assert torch.equal(a1, b1) and torch.equal(a2, b2)  # same seed, same views
    assert not torch.equal(a1, a2) and not torch.equal(a1, c1)  # two different views; another seed differs


def test_multicrop_global_then_local_views():
    from ssl_vision.transforms import MultiCropConfig, multicrop_transform

    info = ImageInfo(channels=1, image_size=28, mean=[0.3], std=[0.3])
    t = multicrop_transform(MultiCropConfig(n_local=3), info)
    views = t.collate([t(torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8))] * 2)
    assert [tuple(v.shape) for v in views] == [(2, 1, 28, 28)] * 2 + [(2, 1, 12, 12)] * 3
    ds = PretextDataset([torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8)], t)
    assert all(torch.equal(a, b) for a, b in zip(_views(t, ds, (0, 1)), _views(t, ds, (0, 1)), strict=True))
    assert not torch.equal(_views(t, ds, (0, 1))[2], _views(t, ds, (0, 1))[3])  # each local view is its own draw


def test_byol_views_are_asymmetric_and_mae_view_keeps_colours():
    from ssl_vision.transforms import byol_views, mae_view

    v1, v2 = byol_views()
    assert (v1.blur_prob, v1.solarize_prob) == (1.0, 0.0) and (v2.blur_prob, v2.solarize_prob) == (0.1, 0.2)
    info = ImageInfo(channels=1, image_size=16, mean=[0.0], std=[1.0])
    t = view_transform(mae_view(), info)
    # with no colour changes, a full-scale crop of a constant image stays that constant
    x = torch.full((1, 16, 16), 51, dtype=torch.uint8)
    torch.testing.assert_close(t(x), torch.full((1, 16, 16), 0.2))


def test_view_settings_are_checked():
    import pytest

    from ssl_core.errors import ConfigError

    with pytest.raises(ConfigError, match="crop_scale"):
        ViewConfig(crop_scale=[0.5, 0.2])
    with pytest.raises(ConfigError, match="probabilities"):
        ViewConfig(blur_prob=1.5)


def _blur_op(t):
    """The Gaussian blur inside a view transform's RandomApply."""
    from torchvision.transforms import v2

    (op,) = [o.transforms[0] for o in t.transforms if isinstance(o, v2.RandomApply)
             and isinstance(o.transforms[0], v2.GaussianBlur)]  # fmt: skip
    return op


def _spread(img: torch.Tensor) -> float:
    """Standard deviation, in pixels along the width, of an image read as a distribution of mass."""
    w = img[0].double() / img[0].double().sum()
    c = torch.arange(w.shape[1], dtype=torch.double)
    m = (w.sum(0) * c).sum()
    return float((w.sum(0) * (c - m) ** 2).sum().sqrt())


def test_blur_kernel_holds_three_sigma_and_fits_the_view():
    from ssl_vision.transforms.views import blur_kernel_size

    assert [blur_kernel_size(2.0, s) for s in (224, 28, 12, 5, 4)] == [13, 13, 11, 5, 3]
    assert blur_kernel_size(0.5, 28) == 5 and blur_kernel_size(0.1, 28) == 3
    for size in (28, 12):  # the view transform uses it for global and local views alike
        t = view_transform(ViewConfig(size=size, blur_prob=1.0), ImageInfo(channels=1, image_size=28))
        assert tuple(_blur_op(t).kernel_size) == (blur_kernel_size(2.0, size),) * 2


def test_blur_realises_the_sigma_it_is_given_as_pils_blur_does():
    """A blurred point spreads as the untruncated Gaussian sampled on the pixel grid (naive reference): exactly
    with torchvision's kernel (float inputs), and within PIL's box-pass approximation on uint8 views, whose
    blur is PIL's ``GaussianBlur(radius=sigma)`` (lightly's); the 3-pixel kernel used before gave 0.80
    pixels at sigma 2."""
    import numpy as np
    from PIL import Image, ImageFilter

    info = ImageInfo(channels=1, image_size=28, mean=[0.0], std=[1.0])
    point = torch.zeros(1, 28, 28, dtype=torch.uint8)
    point[0, 14, 14] = 255
    for sigma in (0.5, 1.0, 2.0):
        cfg = ViewConfig(crop_scale=[1, 1], crop_ratio=[1, 1], hflip=0, jitter_prob=0, blur_prob=1,
                         blur_sigma=[sigma, sigma])  # fmt: skip
        t = view_transform(cfg, info)
        grid = torch.arange(-30, 31, dtype=torch.double)
        w = torch.exp(-(grid**2) / (2 * sigma**2))
        reference = float((w * grid**2).sum() / w.sum()) ** 0.5
        assert abs(_spread(_blur_op(t)(point.float())) - reference) < 0.02 * sigma  # torchvision's, on floats
        pil = torch.from_numpy(np.array(Image.fromarray(point[0].numpy(), "L").filter(ImageFilter.GaussianBlur(sigma))))
        assert abs(_spread(t(point)) - _spread(pil[None])) < 0.02 * sigma  # PIL's, on uint8 views
        assert abs(_spread(t(point)) - reference) < 0.15 * sigma  # PIL's box passes approximate the Gaussian


def test_blur_is_pils_up_to_the_border():
    """On uint8 views the blur is PIL's ``GaussianBlur(radius=sigma)`` exactly, border included, for 1 and 3
    channels, with sigma drawn from torch's generator; torchvision's blur (which reflects the image at its
    border) differs there by tens of grey levels; other inputs fall back to torchvision's blur."""
    import numpy as np
    from PIL import Image, ImageFilter
    from torchvision.transforms import v2

    from ssl_vision.transforms.views import GaussianBlur

    stripe = torch.zeros(1, 28, 28, dtype=torch.uint8)
    stripe[0, :, :3] = torch.tensor([250, 150, 60], dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    for x in (stripe, torch.randint(0, 256, (1, 28, 28), generator=g, dtype=torch.uint8),
              torch.randint(0, 256, (3, 20, 24), generator=g, dtype=torch.uint8)):  # fmt: skip
        for sigma in (0.5, 1.0, 2.0):
            ours = GaussianBlur(13, sigma=(sigma, sigma))(x)
            img = Image.fromarray(x[0].numpy() if len(x) == 1 else x.permute(1, 2, 0).numpy())
            pil = torch.from_numpy(np.array(img.filter(ImageFilter.GaussianBlur(radius=sigma))))
            assert ours.dtype == torch.uint8 and ours.shape == x.shape
            assert torch.equal(ours, pil[None] if len(x) == 1 else pil.permute(2, 0, 1))
    reflected = v2.GaussianBlur(13, sigma=(1.0, 1.0))(stripe)[0, 5, 0]
    assert GaussianBlur(13, sigma=(1.0, 1.0))(stripe)[0, 5, 0] == 208 and reflected == 179  # the border row
    torch.manual_seed(4)
    a = GaussianBlur(13, sigma=(0.1, 2.0))(stripe)
    torch.manual_seed(4)
    assert torch.equal(a, GaussianBlur(13, sigma=(0.1, 2.0))(stripe))  # sigma from torch's generator
    f = stripe.float()
    torch.testing.assert_close(GaussianBlur(13, sigma=(1.0, 1.0))(f), v2.GaussianBlur(13, sigma=(1.0, 1.0))(f))


def test_blur_sigma_is_checked():
    import pytest

    from ssl_core.errors import ConfigError

    with pytest.raises(ConfigError, match="blur_sigma"):
        ViewConfig(blur_sigma=[2.0, 0.1])
    with pytest.raises(ConfigError, match="blur_sigma"):
        ViewConfig(blur_sigma=[0.0, 1.0])

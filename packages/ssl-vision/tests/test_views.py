import torch

from ssl_core.train.data import PretextDataset
from ssl_vision.data.images import ImageInfo
from ssl_vision.transforms import MultiView, ViewConfig, view_transform


def test_shapes_dtype_and_normalisation():
    info = ImageInfo(channels=3, image_size=24, mean=[0.5] * 3, std=[0.25] * 3)
    t = view_transform(ViewConfig(blur_prob=0.5, solarize_prob=0.2), info)
    x = torch.randint(0, 256, (3, 32, 30), dtype=torch.uint8)
    v = t(x)
    assert v.shape == (3, 24, 24) and v.dtype == torch.float32
    assert v.min() >= (0 - 0.5) / 0.25 - 1e-5 and v.max() <= (1 - 0.5) / 0.25 + 1e-5


def test_views_are_seeded_and_differ():
    info = ImageInfo(channels=1, image_size=28, mean=[0.3], std=[0.3])
    view = view_transform(ViewConfig(), info)
    ds = PretextDataset([torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8)], MultiView([view, view]))
    a1, a2 = ds[(0, 5)]
    b1, b2 = ds[(0, 5)]
    c1, _ = ds[(0, 6)]
    assert torch.equal(a1, b1) and torch.equal(a2, b2)  # same seed, same views
    assert not torch.equal(a1, a2) and not torch.equal(a1, c1)  # two different views; another seed differs

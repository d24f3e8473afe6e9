import dataclasses

import pytest
import torch

from ssl_core.errors import ConfigError
from ssl_core.testing import fit_fixed_batch, pretext_batch
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods import SimCLR, SimCLRConfig
from ssl_vision.models import ResNet, ResNetConfig

INFO = ImageInfo(channels=1, image_size=16, mean=[0.5], std=[0.5])


def tiny_config(**kw):
    return SimCLRConfig(**{"backbone": ResNetConfig(width=8), "proj_hidden_dim": 32, "proj_dim": 16, **kw})


def test_forward_backward_and_embed():
    torch.manual_seed(0)
    m = SimCLR(tiny_config(), INFO)
    x1, x2 = torch.randn(6, 1, 16, 16), torch.randn(6, 1, 16, 16)
    out = m((x1, x2))
    out.loss.backward()
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert all(p.grad is not None for p in m.parameters())
    assert m.embed(x1).shape == (6, 64)
    views = pretext_batch(m, torch.randint(0, 256, (3, 1, 16, 16), dtype=torch.uint8))
    assert len(views) == 2 and views[0].shape == (3, 1, 16, 16)


def test_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    m = SimCLR(tiny_config(), INFO)
    imgs = torch.randint(0, 256, (32, 1, 16, 16), dtype=torch.uint8)
    batch = pretext_batch(m, imgs)
    losses = fit_fixed_batch(m, batch)
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5


def test_backbone_channels_follow_the_data_or_must_agree():
    m = SimCLR(tiny_config(), dataclasses.replace(INFO, channels=3))
    assert m.backbone.config.in_channels == 3
    with pytest.raises(ConfigError, match="in_channels=1"):
        SimCLR(tiny_config(backbone=ResNetConfig(width=8, in_channels=1)), dataclasses.replace(INFO, channels=3))


def test_resnet18_shape():
    r = ResNet(ResNetConfig(layers=[2, 2, 2, 2], width=64, in_channels=3))
    assert r.embed_dim == 512
    assert sum(p.numel() for p in r.parameters()) == 11_168_832  # torchvision's resnet18 minus fc, 3x3 stem
    assert r(torch.randn(2, 3, 32, 32)).shape == (2, 512)

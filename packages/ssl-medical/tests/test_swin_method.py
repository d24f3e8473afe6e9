"""Swin UNETR pretraining (Tang et al.): only the Swin encoder and the heads train, and every one of their
parameters gets a gradient; the loss falls on a fixed batch; every weighting runs; the export is the full SwinUNETR."""

import pytest
import torch

from ssl_core.errors import ConfigError
from ssl_core.testing import fit_fixed_batch, pretext_batch, without_gradient
from ssl_medical.info import VolumeInfo
from ssl_medical.methods.swin_pretext import SwinPretextConfig, SwinUNETRPretext
from ssl_medical.models.monai_nets import build_monai_backbone

INFO = VolumeInfo(patch_size=(32, 32, 32))
TINY = {"feature_size": 12, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 2, 2), "window_size": 4, "proj_dim": 16}


def small(**kw):
    return SwinUNETRPretext(SwinPretextConfig(**{**TINY, **kw}), INFO)


def batch_of(m, n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    return pretext_batch(m, [torch.rand(1, 32, 32, 32, generator=g) for _ in range(n)])


@pytest.mark.parametrize("weighting", ["fixed", "uncertainty", "mgda"])
def test_only_the_encoder_and_heads_train_and_all_get_gradients(weighting):
    torch.manual_seed(0)
    m = small(weighting=weighting).train()
    out = m(batch_of(m))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    missing = without_gradient(m)
    assert not missing, f"no gradient for {missing}"
    trained = [n for n, p in m.named_parameters() if p.requires_grad]
    backbone = [n for n in trained if n.startswith("backbone.")]
    assert backbone and all(n.startswith("backbone.net.swinViT.") for n in backbone)
    n_swin = sum(1 for _ in m.backbone.net.swinViT.parameters())
    assert len(backbone) == n_swin  # the whole encoder trains


def test_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    m = small()
    losses = fit_fixed_batch(m, batch_of(m), steps=15, lr=3e-4)  # Tang et al.: 4e-4
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:2]) / 2, losses


def test_export_is_the_full_swinunetr_and_embed_matches():
    torch.manual_seed(0)
    m = small().eval()
    spec = m.backbone_spec()
    assert spec.name == "monai" and spec.config["monai_class"] == "SwinUNETR"
    assert spec.config["kwargs"]["window_size"] == 4 and spec.embed_dim == 31 * 12
    again = build_monai_backbone(spec.config)
    again.load_state_dict(m.backbone.state_dict(), strict=True)
    x = torch.rand(2, 1, 32, 32, 32)
    torch.testing.assert_close(again.eval()(x), m.embed(x))
    # the SwinUNETR itself (what MONAI users load) runs end to end at 64^3
    assert again.net(torch.rand(1, 1, 64, 64, 64)).shape == (1, 1, 64, 64, 64)


def test_errors():
    with pytest.raises(ConfigError, match="multiple of 32"):
        SwinUNETRPretext(SwinPretextConfig(**TINY), VolumeInfo(patch_size=(48, 48, 48)))
    with pytest.raises(ConfigError, match="4 stages"):
        SwinPretextConfig(depths=(2, 2))
    with pytest.raises(ConfigError, match="multiple of 12"):
        small(feature_size=16)

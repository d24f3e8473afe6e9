"""CSwin UNet multi-task pretraining: gradients reach every encoder and head parameter, the loss falls on a fixed
batch, every weighting runs, embed / export spec, configuration errors."""

import pytest
import torch

from ssl_core.errors import ConfigError
from ssl_core.testing import fit_fixed_batch, pretext_batch, without_gradient
from ssl_medical.info import VolumeInfo
from ssl_medical.methods.cswin_multitask import CSwinMultiTask, CSwinMultiTaskConfig
from ssl_medical.models.cswin import build_cswin_unet

INFO = VolumeInfo(patch_size=(16, 16, 16))
TINY = {"embed_dim": 6, "depths": (1, 1, 1), "num_heads": (3, 3, 3), "stripe_width": (2, 2, 2), "mlp_ratio": 1.0}


def small(**kw):
    return CSwinMultiTask(CSwinMultiTaskConfig(backbone=dict(TINY), proj_dim=16, **kw), INFO)


def batch_of(m, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    return pretext_batch(m, [torch.rand(1, 16, 16, 16, generator=g) for _ in range(n)])


@pytest.mark.parametrize("weighting", ["uncertainty", "fixed", "mgda"])
def test_gradients_reach_every_trained_parameter(weighting):
    torch.manual_seed(0)
    m = small(weighting=weighting).train()
    out = m(batch_of(m))
    assert torch.isfinite(out.loss) and {"loss_rotation", "loss_contrastive", "loss_reconstruction"} <= set(out.logs)
    out.loss.backward()
    missing = without_gradient(m)
    assert not missing, f"no gradient for {missing}"
    trained = {n for n, p in m.named_parameters() if p.requires_grad}
    assert any(n.startswith("backbone.stages.") for n in trained) and any(
        n.startswith("objective.heads.") for n in trained
    )
    assert ("objective.weighting.log_vars" in trained) == (weighting == "uncertainty")
    # the UNet decoder is not part of the pretext: frozen
    assert not any(n.startswith(("backbone.head.", "backbone.fuse.", "backbone.stem.")) for n in trained)


def test_default_weighting_is_the_papers_automatic_weighted_loss():
    assert CSwinMultiTaskConfig().weighting == "uncertainty"


def test_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    m = small()
    losses = fit_fixed_batch(m, batch_of(m, n=4), steps=30, lr=3e-3)
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:3]) / 3, losses


def test_embed_and_spec_rebuild_the_backbone():
    torch.manual_seed(0)
    m = small().eval()
    x = torch.rand(3, 1, 16, 16, 16)
    emb = m.embed(x)
    assert emb.shape == (3, m.backbone.embed_dim) == (3, 42)
    spec = m.backbone_spec()
    assert spec.name == "cswin_unet" and spec.embed_dim == 42 and spec.input["patch_size"] == [16, 16, 16]
    again = build_cswin_unet(spec.config)
    again.load_state_dict(m.backbone.state_dict(), strict=True)
    torch.testing.assert_close(again.eval()(x), emb)
    # the 32^3 region probe patches go through a backbone trained on 16^3
    assert m.embed(torch.rand(2, 1, 32, 32, 32)).shape == (2, 42)


def test_errors():
    with pytest.raises(ConfigError, match="multiple of 8"):
        CSwinMultiTask(CSwinMultiTaskConfig(backbone=dict(TINY)), VolumeInfo(patch_size=(20, 20, 20)))
    with pytest.raises(ConfigError, match="powers of 2"):
        CSwinMultiTask(CSwinMultiTaskConfig(backbone={**TINY, "patch_size": 3}), VolumeInfo(patch_size=(24, 24, 24)))
    with pytest.raises(ConfigError, match="weighting"):
        CSwinMultiTaskConfig(weighting="awl")

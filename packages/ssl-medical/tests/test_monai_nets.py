"""MonaiBackbone: feature maps equal the MONAI networks' own intermediate tensors, pooled embeddings, segmenters
with copied weights, gradients to every parameter, config round trip. Tiny networks on 16^3-64^3 volumes."""

import pytest
import torch

from ssl_core.errors import ConfigError, DataError
from ssl_core.testing import without_gradient
from ssl_medical.models.monai_nets import (
    MonaiBackbone,
    build_monai_backbone,
    swinunetr_kwargs,
    unet_kwargs,
    vitautoenc_kwargs,
)

TINY = {
    "UNet": unet_kwargs(channels=(4, 8, 16), strides=(2, 2)),
    "SwinUNETR": swinunetr_kwargs(feature_size=12, depths=(1, 1, 1, 1), num_heads=(3, 3, 3, 3)),
    "ViTAutoEnc": vitautoenc_kwargs(32, patch_size=16, hidden_size=24, mlp_dim=48, num_layers=2, num_heads=2),
}
EMBED_DIM = {"UNet": 4 + 8 + 16, "SwinUNETR": 31 * 12, "ViTAutoEnc": 24}


def _backbone(cls: str) -> MonaiBackbone:
    torch.manual_seed(0)
    return MonaiBackbone(cls, TINY[cls])


@pytest.mark.parametrize("cls", ["UNet", "SwinUNETR", "ViTAutoEnc"])
def test_embed_32(cls):
    bb = _backbone(cls).eval()
    x = torch.rand(2, 1, 32, 32, 32)
    with torch.no_grad():
        e = bb(x)
        maps = bb.features(x)
    assert bb.embed_dim == EMBED_DIM[cls]
    assert e.shape == (2, EMBED_DIM[cls])
    assert torch.isfinite(e).all()
    assert torch.allclose(e, torch.cat([m.mean(dim=(2, 3, 4)) for m in maps], 1))
    assert e[0].ne(e[1]).any()  # depends on the input


def test_unet_features_are_the_down_path_of_the_full_forward():
    bb = _backbone("UNet").eval()
    x = torch.rand(2, 1, 32, 32, 32)
    hooked = []
    handles = [b.register_forward_hook(lambda m, i, o: hooked.append(o)) for b in bb._down]
    with torch.no_grad():
        out = bb.net(x)
        for h in handles:
            h.remove()
        maps = bb.features(x)
    assert out.shape == (2, 1, 32, 32, 32)
    assert [tuple(m.shape) for m in maps] == [(2, 4, 16, 16, 16), (2, 8, 8, 8, 8), (2, 16, 8, 8, 8)]
    assert len(hooked) == 3
    for h, m in zip(hooked, maps, strict=True):
        torch.testing.assert_close(h, m)
    # the first block is net.model[0], the bottom block the innermost SkipConnection's submodule
    assert bb._down[0] is bb.net.model[0]
    assert bb._down[-1] is bb.net.model[1].submodule[1].submodule


def test_swin_features_are_the_hidden_states_of_the_full_forward():
    bb = _backbone("SwinUNETR").eval()
    x = torch.rand(1, 1, 64, 64, 64)  # the full network needs 64^3 (instance norm refuses a 1^3 bottleneck)
    hooked = []
    h = bb.net.swinViT.register_forward_hook(lambda m, i, o: hooked.extend(o))
    with torch.no_grad():
        out = bb.net(x)
        h.remove()
        maps = bb.features(x)
    assert out.shape == (1, 1, 64, 64, 64)
    assert [tuple(m.shape[1:]) for m in maps] == [(12 * 2**i, *(32 // 2**i,) * 3) for i in range(5)]
    for a, b in zip(hooked, maps, strict=True):
        torch.testing.assert_close(a, b)


def test_vit_features_are_the_normed_tokens_and_other_sizes_work():
    bb = _backbone("ViTAutoEnc").eval()
    x = torch.rand(2, 1, 32, 32, 32)
    with torch.no_grad():
        out, hidden = bb.net(x)
        (m,) = bb.features(x)
        tokens = bb.net.norm(hidden[-1])
        small = bb(torch.rand(2, 1, 16, 16, 16))  # position embeddings resized to the 1^3 grid
    assert out.shape == (2, 1, 32, 32, 32)
    assert m.shape == (2, 24, 2, 2, 2)
    torch.testing.assert_close(m.flatten(2).transpose(1, 2), tokens)
    assert small.shape == (2, 24) and torch.isfinite(small).all()
    with pytest.raises(DataError, match="multiples of its patch size"):
        bb(torch.rand(1, 1, 20, 20, 20))


@pytest.mark.parametrize("cls", ["UNet", "SwinUNETR"])
def test_segmenter_shape_and_copied_weights(cls):
    bb = _backbone(cls)
    seg = bb.segmenter(4)
    size = 64 if cls == "SwinUNETR" else 32
    with torch.no_grad():
        y = seg.eval()(torch.rand(1, 1, size, size, size))
    assert y.shape == (1, 4, size, size, size)
    head = "model.2." if cls == "UNet" else "out."
    own, new = bb.net.state_dict(), seg.state_dict()
    assert own.keys() == new.keys()
    copied = [k for k in own if not k.startswith(head)]
    assert len(copied) > 0.8 * len(own)
    for k in copied:
        assert torch.equal(own[k], new[k]), k
        if own[k].numel():
            assert own[k].data_ptr() != new[k].data_ptr()  # a copy, not shared
    assert any(own[k].shape != new[k].shape for k in own if k.startswith(head))


def test_vit_has_no_segmenter():
    assert _backbone("ViTAutoEnc").segmenter(3) is None


def test_gradients_reach_every_parameter():
    # UNet: the full network (reconstruction methods) and the pooled encoder
    bb = _backbone("UNet").train()
    x = torch.rand(2, 1, 32, 32, 32)
    bb.net(x).square().mean().backward()
    assert without_gradient(bb.net, nonzero=False) == []
    bb.zero_grad(set_to_none=True)
    bb(x).square().sum().backward()
    down = {id(p) for block in bb._down for p in block.parameters()}
    assert all((p.grad is not None) == (id(p) in down) for p in bb.parameters())  # the encoder, not the decoder
    # SwinUNETR: the encoder in training at 32^3, the full network at 64^3
    bb = _backbone("SwinUNETR").train()
    bb(torch.rand(2, 1, 32, 32, 32)).square().sum().backward()
    assert without_gradient(bb.net.swinViT) == []
    bb.zero_grad(set_to_none=True)
    bb.net(torch.rand(1, 1, 64, 64, 64)).square().mean().backward()
    assert without_gradient(bb.net, nonzero=False) == []
    # ViTAutoEnc: the full network
    bb = _backbone("ViTAutoEnc").train()
    out, _ = bb.net(x)
    out.square().mean().backward()
    assert without_gradient(bb.net) == []
    frozen = [n for n, p in bb.net.named_parameters() if not p.requires_grad]
    assert frozen and all("norm_cross_attn" in n for n in frozen)  # built by MONAI, never used


@pytest.mark.parametrize("cls", ["UNet", "ViTAutoEnc"])
def test_config_round_trip(cls):
    bb = _backbone(cls).eval()
    again = build_monai_backbone(bb.config()).eval()
    again.load_state_dict(bb.state_dict(), strict=True)
    x = torch.rand(1, 1, 32, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(bb(x), again(x))
    assert bb.config()["monai_class"] == cls


def test_bad_input():
    with pytest.raises(ConfigError, match="unknown MONAI backbone"):
        MonaiBackbone("DynUNet", {})
    with pytest.raises(ConfigError, match="JSON"):
        MonaiBackbone("UNet", unet_kwargs(norm=torch.nn.InstanceNorm3d))
    with pytest.raises(ConfigError, match="square number"):
        vitautoenc_kwargs(32, patch_size=8)
    with pytest.raises(ConfigError, match="multiple of 12"):
        swinunetr_kwargs(feature_size=16)
    with pytest.raises(ConfigError, match="monai_class"):
        build_monai_backbone({"kwargs": {}})
    with pytest.raises(DataError, match="add the channel axis"):
        _backbone("UNet")(torch.rand(2, 32, 32, 32))

"""The 3-D CSwin UNet: cross-shaped window attention against a naive loop over stripes (values and gradients), its
cross-shaped receptive field, shapes on 32^3, the segmenter and the config round trip."""

import pytest
import torch
import torch.nn.functional as F

from ssl_core.errors import ConfigError
from ssl_medical.models.cswin import (
    CrossShapedAttention,
    CSwinUNet,
    CSwinUNetConfig,
    build_cswin_unet,
    fit_stripe,
    window_merge,
    window_partition,
)

TINY = {"embed_dim": 6, "depths": (1, 1), "num_heads": (3, 3), "stripe_width": (2, 2), "mlp_ratio": 1.0}


def naive_cross_attention(attn: CrossShapedAttention, x: torch.Tensor, size):
    """Loop over the three axis groups, every stripe and every head; LePE as a convolution of the stripe's values."""
    b, n, c = x.shape
    q, k, v = (t.transpose(1, 2).reshape(b, c, *size) for t in attn.qkv(x).split(c, dim=2))
    g, hg = c // 3, attn.num_heads // 3
    hd = g // hg
    out = torch.zeros(b, c, *size, dtype=x.dtype)
    for a in range(3):
        win = [s if i == a else fit_stripe(s, attn.stripe_width) for i, s in enumerate(size)]
        ch = slice(a * g, (a + 1) * g)
        for d0 in range(0, size[0], win[0]):
            for h0 in range(0, size[1], win[1]):
                for w0 in range(0, size[2], win[2]):
                    sl = (slice(d0, d0 + win[0]), slice(h0, h0 + win[1]), slice(w0, w0 + win[2]))
                    qs, ks, vs = (t[:, ch][(slice(None), slice(None), *sl)] for t in (q, k, v))  # (B, g, wd, wh, ww)
                    heads = []
                    for j in range(hg):
                        hs = slice(j * hd, (j + 1) * hd)
                        qq, kk, vv = (t[:, hs].flatten(2) for t in (qs, ks, vs))  # (B, hd, L)
                        w = torch.softmax(qq.transpose(1, 2) @ kk / hd**0.5, dim=-1)  # (B, L, L)
                        heads.append((w @ vv.transpose(1, 2)).transpose(1, 2))  # (B, hd, L)
                    o = torch.cat(heads, dim=1).reshape(b, g, *win)
                    if attn.lepe is not None:
                        conv = attn.lepe[a]
                        o = o + F.conv3d(vs, conv.weight, conv.bias, padding=1, groups=g)
                    out[(slice(None), ch, *sl)] = o
    return attn.proj(out.flatten(2).transpose(1, 2))


@pytest.mark.parametrize(
    ("size", "heads", "width", "lepe"), [((4, 6, 8), 6, 2, True), ((6, 4, 5), 3, 4, True), ((4, 4, 4), 3, 1, False)]
)
def test_cross_shaped_attention_matches_a_naive_loop(size, heads, width, lepe):
    torch.manual_seed(0)
    attn = CrossShapedAttention(12, heads, width, lepe).double()
    x = torch.randn(2, size[0] * size[1] * size[2], 12, dtype=torch.float64, requires_grad=True)
    ours, ref = attn(x, size), naive_cross_attention(attn, x, size)
    torch.testing.assert_close(ours, ref)
    params = [x, *attn.parameters()]
    w = torch.randn_like(ours)
    for a, b in zip(
        torch.autograd.grad((ours * w).sum(), params), torch.autograd.grad((ref * w).sum(), params), strict=True
    ):
        torch.testing.assert_close(a, b)


def test_attention_sees_a_cross_of_three_bars():
    """Without LePE, an output voxel depends on exactly the voxels of its three stripes (a cross of bars)."""
    torch.manual_seed(0)
    size, sw = (8, 8, 8), 2
    attn = CrossShapedAttention(6, 3, sw, lepe=False).double()
    x = torch.randn(1, 512, 6, dtype=torch.float64, requires_grad=True)
    p = (5, 2, 3)
    out = attn(x, size).reshape(1, *size, 6)
    (grad,) = torch.autograd.grad(out[0, p[0], p[1], p[2]].sum(), x)
    seen = grad.abs().sum(-1).reshape(size) > 0
    lo = [(c // sw) * sw for c in p]
    expect = torch.zeros(size, dtype=torch.bool)
    expect[:, lo[1] : lo[1] + sw, lo[2] : lo[2] + sw] = True  # stripe along D
    expect[lo[0] : lo[0] + sw, :, lo[2] : lo[2] + sw] = True  # along H
    expect[lo[0] : lo[0] + sw, lo[1] : lo[1] + sw, :] = True  # along W
    assert torch.equal(seen, expect)


def test_window_partition_round_trip_and_fitted_stripes():
    x = torch.randn(2, 5, 4, 6, 8)
    for win in [(4, 2, 2), (2, 6, 4), (1, 1, 8)]:
        w = window_partition(x, win)
        assert w.shape == (2 * 4 * 6 * 8 // (win[0] * win[1] * win[2]), win[0] * win[1] * win[2], 5)
        torch.testing.assert_close(window_merge(w, win, (4, 6, 8)), x)
    assert [fit_stripe(s, 4) for s in (16, 6, 5, 2, 1)] == [4, 3, 1, 2, 1]


def test_shapes_on_32_cubed_embedding_features_segmenter():
    torch.manual_seed(0)
    net = CSwinUNet()
    x = torch.rand(2, 1, 32, 32, 32)
    feats = net.features(x)
    assert [tuple(f.shape) for f in feats] == [(2, 24, 16, 16, 16), (2, 48, 8, 8, 8), (2, 96, 4, 4, 4)]
    emb = net(x)
    assert emb.shape == (2, net.embed_dim) == (2, 168)
    torch.testing.assert_close(emb, torch.cat([f.mean((2, 3, 4)) for f in feats], 1))
    seg = net.segmenter(3)
    assert seg(x).shape == (2, 3, 32, 32, 32)
    # the encoder weights are copied, the head is new, and every parameter trains
    torch.testing.assert_close(seg.net(x), emb)
    assert all(p.requires_grad for p in seg.parameters())
    seg(x).sum().backward()
    assert all(p.grad is not None for p in seg.parameters())
    # the original is untouched
    assert net.head.out_channels == 1


def test_config_round_trip_and_errors():
    net = CSwinUNet(CSwinUNetConfig(**TINY))
    again = build_cswin_unet(net.config())
    again.load_state_dict(net.state_dict(), strict=True)
    x = torch.rand(1, 1, 8, 8, 8)
    torch.testing.assert_close(again(x), net(x))
    with pytest.raises(ConfigError, match="multiple of 3"):
        CSwinUNetConfig(num_heads=(4, 6, 12))
    with pytest.raises(ConfigError, match="one entry per stage"):
        CSwinUNetConfig(depths=(1, 1))
    with pytest.raises(ValueError, match="multiple of 4"):
        net(torch.rand(1, 1, 6, 8, 8))

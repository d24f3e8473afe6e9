import math

import pytest
import torch
from torch import nn

from ssl_core.errors import ConfigError
from ssl_vision.models.vit import ViT, ViTConfig, patchify, sincos_pos_embed_2d, unpatchify


def tiny_vit(**kw):
    return ViT(ViTConfig(**{"image_size": 16, "in_channels": 1, "depth": 2, **kw}))


def test_sizes_and_parameter_counts():
    tiny = ViT(ViTConfig(size="tiny", image_size=28, in_channels=1))
    small = ViT(ViTConfig(size="small", image_size=28, in_channels=1))
    assert (tiny.embed_dim, small.embed_dim) == (192, 384)
    assert (len(tiny.blocks), len(small.blocks)) == (12, 12)
    assert sum(p.numel() for p in tiny.parameters()) == 5_342_208
    assert sum(p.numel() for p in small.parameters()) == 21_301_248
    assert tiny.blocks[0].self_attn.num_heads == 3 and small.blocks[0].self_attn.num_heads == 6


def test_shapes_of_each_stage():
    vit = tiny_vit(patch_size=4)
    x = torch.randn(3, 1, 16, 16)
    assert vit.patch_embed(x).shape == (3, 16, 192)
    assert vit.forward_features(x).shape == (3, 17, 192)
    assert vit(x).shape == (3, 192)
    subset = (vit.patch_embed(x) + vit.pos_embed)[:, :5]
    assert vit.encode(subset).shape == (3, 6, 192)  # the encoder takes any number of tokens (MAE)


def test_pooling_choices():
    torch.manual_seed(0)
    vit = tiny_vit(pool="mean")
    x = torch.randn(2, 1, 16, 16)
    feats = vit.forward_features(x)
    torch.testing.assert_close(vit(x), feats[:, 1:].mean(1))
    vit.config.pool = "cls"
    torch.testing.assert_close(vit(x), feats[:, 0])


def test_patch_size_must_divide_the_image():
    with pytest.raises(ConfigError, match="patch_size 5 must divide"):
        ViTConfig(patch_size=5, image_size=28)
    with pytest.raises(ConfigError, match="size must be one of"):
        ViTConfig(size="huge")


def test_patchify_round_trip_and_layout():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    p = patchify(x, 4)
    assert p.shape == (2, 4, 48)
    # patch 1 is the top-right 4x4 block, pixels as (row, col, channel)
    torch.testing.assert_close(p[0, 1].view(4, 4, 3), x[0, :, :4, 4:].permute(1, 2, 0))
    torch.testing.assert_close(unpatchify(p, 4, 3), x)


def test_sincos_embedding_matches_the_mae_formula():
    dim, grid = 8, 3
    emb = sincos_pos_embed_2d(dim, grid)
    assert emb.shape == (9, 8)
    # naive reference: for patch (r, c), [sin(r w), cos(r w), sin(c w), cos(c w)], w_k = 10000^(-k/(dim/4))
    w = [1 / 10000 ** (k / (dim / 4)) for k in range(dim // 4)]
    for r in range(grid):
        for c in range(grid):
            ref = [math.sin(r * v) for v in w] + [math.cos(r * v) for v in w]
            ref += [math.sin(c * v) for v in w] + [math.cos(c * v) for v in w]
            torch.testing.assert_close(emb[r * grid + c], torch.tensor(ref))


def test_blocks_are_pre_norm_transformer_blocks():
    """Our block equals x + MHA(LN(x)), then + MLP(LN(.)) with GELU: the ViT block."""
    torch.manual_seed(0)
    vit = tiny_vit()
    blk = vit.blocks[0]
    x = torch.randn(2, 5, 192)
    h = blk.norm1(x)
    h = x + blk.self_attn(h, h, h, need_weights=False)[0]
    ref = h + blk.linear2(nn.functional.gelu(blk.linear1(blk.norm2(h))))
    torch.testing.assert_close(blk(x), ref)


def test_backward_reaches_every_parameter():
    vit = tiny_vit()
    vit(torch.randn(2, 1, 16, 16)).sum().backward()
    assert all(p.grad is not None for p in vit.parameters())

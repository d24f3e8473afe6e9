"""2-D rotary position embeddings and the RoPE ViT (CroCo v2's backbone)."""

import dataclasses
import math

import pytest
import torch

from ssl_core.errors import ConfigError
from ssl_core.testing import without_gradient
from ssl_vision.models.rope import (
    Attention,
    RoPEViT,
    RoPEViTConfig,
    apply_rope_2d,
    build_vit_rope,
    grid_positions,
    rope_2d_tables,
)


def naive_rope(vec, row, col, base):
    """One head's vector rotated channel pair by channel pair: the first half of the channels by ``row``, the
    second by ``col``; in a half of ``d`` channels, pair ``(k, k + d/2)`` by ``pos * base^(-2k/d)``."""
    out = vec.clone()
    d = len(vec) // 2
    for offset, pos in ((0, row), (d, col)):
        for k in range(d // 2):
            theta = pos * base ** (-2 * k / d)
            c, s = math.cos(theta), math.sin(theta)
            i, j = offset + k, offset + k + d // 2
            out[i] = vec[i] * c - vec[j] * s
            out[j] = vec[i] * s + vec[j] * c
    return out


def vit(**kw):
    torch.manual_seed(0)
    return RoPEViT(RoPEViTConfig(**{"patch_size": 7, "depth": 1, "image_size": 28, "in_channels": 1, **kw}))


def test_rotation_matches_a_per_pair_loop_in_values_and_gradients():
    torch.manual_seed(0)
    x = torch.randn(2, 2, 5, 16, dtype=torch.float64, requires_grad=True)
    pos = torch.randint(0, 8, (2, 5, 2)).double()
    out = apply_rope_2d(x, pos, base=100.0)
    ref = torch.stack(
        [
            torch.stack(
                [
                    torch.stack(
                        [naive_rope(x[b, h, n], pos[b, n, 0].item(), pos[b, n, 1].item(), 100.0) for n in range(5)]
                    )
                    for h in range(2)
                ]
            )
            for b in range(2)
        ]
    )
    torch.testing.assert_close(out, ref)
    w = torch.randn_like(out)
    (g,) = torch.autograd.grad((out * w).sum(), x)
    (g_ref,) = torch.autograd.grad((ref * w).sum(), x)
    torch.testing.assert_close(g, g_ref)


def test_scores_depend_only_on_the_offset_between_positions():
    torch.manual_seed(1)
    q, k = torch.randn(1, 1, 1, 32, dtype=torch.float64), torch.randn(1, 1, 1, 32, dtype=torch.float64)

    def score(pq, pk):
        rq = apply_rope_2d(q, torch.tensor([[pq]], dtype=torch.float64))
        rk = apply_rope_2d(k, torch.tensor([[pk]], dtype=torch.float64))
        return (rq * rk).sum().item()

    base = score((1.0, 2.0), (4.0, 0.0))
    for shift in ((0, 3), (5, -2), (2.5, 7.0)):
        moved = score((1 + shift[0], 2 + shift[1]), (4 + shift[0], 0 + shift[1]))
        assert moved == pytest.approx(base, abs=1e-10)
    # a different offset, on either axis, gives a different score
    assert abs(score((1.0, 2.0), (5.0, 0.0)) - base) > 1e-3
    assert abs(score((1.0, 2.0), (4.0, 1.0)) - base) > 1e-3
    # the same position: the plain dot product
    assert score((3.0, 3.0), (3.0, 3.0)) == pytest.approx((q * k).sum().item(), abs=1e-10)


def test_tables_leave_prefix_tokens_unrotated_and_grid_is_row_major():
    pos = grid_positions(3)
    assert pos.tolist()[:4] == [[0, 0], [0, 1], [0, 2], [1, 0]]
    assert grid_positions(2, span=4).tolist() == [[0, 0], [0, 3], [3, 0], [3, 3]]
    cos, sin = rope_2d_tables(pos, 8, prefix=1)
    assert cos.shape == (1, 1, 10, 8) and (cos[0, 0, 0] == 1).all() and (sin[0, 0, 0] == 0).all()


def test_attention_with_rope_matches_naive_attention():
    torch.manual_seed(2)
    attn = Attention(16, 2).double()
    x = torch.randn(1, 4, 16, dtype=torch.float64)
    ctx = torch.randn(1, 3, 16, dtype=torch.float64)
    qpos, kpos = torch.rand(4, 2) * 5, torch.rand(3, 2) * 5
    out = attn(x, rope_2d_tables(qpos, 8), ctx, rope_2d_tables(kpos, 8))
    q, kv = attn.q(x)[0], attn.kv(ctx)[0]
    k, v = kv[:, :16], kv[:, 16:]
    heads = []
    for h in range(2):
        sl = slice(8 * h, 8 * h + 8)
        rq = torch.stack([naive_rope(q[i, sl], *qpos[i].tolist(), 100.0) for i in range(4)])
        rk = torch.stack([naive_rope(k[j, sl], *kpos[j].tolist(), 100.0) for j in range(3)])
        heads.append(torch.softmax(rq @ rk.T / math.sqrt(8), dim=-1) @ v[:, sl])
    torch.testing.assert_close(out[0], attn.proj(torch.cat(heads, dim=1)))


def test_vit_interface_and_positions_travel_with_tokens():
    m = vit().eval()
    x = torch.randn(3, 1, 28, 28)
    feats = m.forward_features(x)
    assert feats.shape == (3, 17, 192) and m.grid == 4 and m.num_patches == 16 and m.embed_dim == 192
    assert m(x).shape == (3, 192) and torch.equal(m(x), feats[:, 0])
    tokens = m.patch_embed(x)
    torch.testing.assert_close(m.encode(tokens), feats)
    # a subset of patches in any order, with its positions: the same tokens as encoding that subset in grid order
    ids = torch.tensor([[5, 0, 9], [3, 15, 1], [2, 7, 4]])
    sub = tokens.gather(1, ids[..., None].expand(-1, -1, 192))
    out = m.encode(sub, m.positions[ids])
    order = ids.argsort(dim=1)
    sorted_ids = ids.gather(1, order)
    ref = m.encode(tokens.gather(1, sorted_ids[..., None].expand(-1, -1, 192)), m.positions[sorted_ids])
    torch.testing.assert_close(out[:, 1:].gather(1, order[..., None].expand(-1, -1, 192)), ref[:, 1:])
    # without positions the tokens' order would not matter to attention; with them it does
    swapped = m.encode(sub, m.positions[ids.flip(1)])
    assert not torch.allclose(swapped, out, atol=1e-4)
    # smaller crops are accepted, positions spread over the full grid's span
    assert m.forward_features(torch.randn(2, 1, 14, 14)).shape == (2, 5, 192)
    with pytest.raises(ValueError, match="positions"):
        m.encode(sub)


def test_every_parameter_learns_and_mean_pool():
    m = vit(pool="mean")
    m(torch.randn(2, 1, 28, 28)).pow(2).sum().backward()
    assert without_gradient(m) == []


def test_export_builder_rebuilds_the_same_network():
    m = vit().eval()
    config = dataclasses.asdict(m.config)
    assert config["rope_base"] == 100.0
    other = build_vit_rope(config).eval()
    other.load_state_dict(m.state_dict())
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(other(x), m(x))


def test_bad_config():
    with pytest.raises(ConfigError, match="rope_base"):
        RoPEViTConfig(rope_base=1.0)
    with pytest.raises(ConfigError, match="divide the image size"):
        RoPEViTConfig(patch_size=5, image_size=28)


def test_segmentation_probe_reads_its_patch_grid():
    from ssl_vision.probes.segmentation import dense_features

    m = vit().eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        fmap = dense_features(m, x)
        feats = m.forward_features(x)
    assert fmap.shape == (2, 192, 4, 4)
    torch.testing.assert_close(fmap[:, :, 1, 2], feats[:, 1 + 4 * 1 + 2])

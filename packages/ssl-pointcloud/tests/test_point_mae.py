"""Point-MAE and the shared masking / decoder code: loss against a naive Chamfer, gradients, falling
fixed-batch loss, mask share, the encoder's blindness to masked groups, the pretraining augmentation."""

import pytest
import torch

from ssl_core.errors import ConfigError
from ssl_core.testing import fit_fixed_batch, pretext_batch, without_gradient
from ssl_pointcloud.info import PointInfo
from ssl_pointcloud.methods.common import MaskedGroupDecoder, num_masked_groups, random_group_mask, split_groups
from ssl_pointcloud.methods.point_mae import PointMAE, PointMAEConfig
from ssl_pointcloud.models import PointTransformerConfig, group_points

INFO = PointInfo(num_points=128)
SMALL_PT = {"num_groups": 16, "group_size": 8, "width": 32, "depth": 2, "heads": 2, "pointnet_dims": (16, 32, 32)}


def small_method(**kw) -> PointMAE:
    return PointMAE(PointMAEConfig(backbone=PointTransformerConfig(**SMALL_PT), decoder_depth=1, **kw), INFO)


def samples(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(128, 3, generator=g) * 2 - 1 for _ in range(n)]


def batch_of(method, n=4, seed=0):
    torch.manual_seed(seed)
    return pretext_batch(method, samples(n, seed))


def naive_chamfer(x, y):
    d = torch.cdist(x.double(), y.double()) ** 2
    return d.min(2).values.mean(1) + d.min(1).values.mean(1)


def test_loss_equals_a_naive_chamfer_over_the_masked_groups():
    torch.manual_seed(0)
    m = small_method()
    batch = batch_of(m)
    pred, target = m.predict(batch["points"], batch["mask"])
    # the targets: the masked groups of the cloud, relative to their centres, in group order
    _, groups, _ = group_points(batch["points"], 16, 8)
    ref_target = torch.stack([g[mk] for g, mk in zip(groups, batch["mask"], strict=True)])
    torch.testing.assert_close(target, ref_target)
    b, mm, k, _ = target.shape
    assert (b, mm, k) == (4, num_masked_groups(16, 0.6), 8)
    ref = naive_chamfer(pred.reshape(-1, k, 3), target.reshape(-1, k, 3)).mean()
    # Point-MAE's ChamferDistanceL2 (mean of both directions' squared distances over all masked points)
    d = torch.cdist(pred.reshape(-1, k, 3).double(), target.reshape(-1, k, 3).double()) ** 2
    torch.testing.assert_close(ref, d.min(2).values.mean() + d.min(1).values.mean())
    torch.manual_seed(1)
    loss = m(batch).loss
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-7)
    # and the same gradients as the naive loss
    grads = torch.autograd.grad(loss, list(m.parameters()))
    pred, target = m.predict(batch["points"], batch["mask"])
    ref = naive_chamfer(pred.reshape(-1, k, 3), target.reshape(-1, k, 3)).mean().float()
    ref_grads = torch.autograd.grad(ref, list(m.parameters()))
    for (name, _), g, r in zip(m.named_parameters(), grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6, msg=name)


def test_gradients_reach_every_parameter_and_embed():
    torch.manual_seed(0)
    m = small_method().train()
    m(batch_of(m)).loss.backward()
    missing = without_gradient(m)
    assert not missing, f"no gradient for {missing}"
    assert sum(1 for n, _ in m.named_parameters() if n.startswith("backbone.")) > 0
    m.eval()
    x = torch.stack(samples(3))
    emb = m.embed(x)
    assert emb.shape == (3, m.backbone.embed_dim) and torch.isfinite(emb).all()
    torch.testing.assert_close(emb, m.backbone(x))
    spec = m.backbone_spec()
    assert spec.name == "point_transformer" and spec.embed_dim == 64 and spec.config["num_groups"] == 16


def test_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    m = small_method()
    losses = fit_fixed_batch(m, batch_of(m, n=8), steps=30, lr=3e-3)
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:3]) / 3, losses


@pytest.mark.parametrize(("groups", "ratio", "masked"), [(64, 0.6, 38), (16, 0.6, 9), (10, 0.95, 9), (10, 0.01, 1)])
def test_mask_share(groups, ratio, masked):
    mask = random_group_mask(50, groups, ratio, torch.Generator().manual_seed(0))
    assert mask.dtype == torch.bool and mask.shape == (50, groups)
    assert (mask.sum(1) == masked).all()
    assert masked == num_masked_groups(groups, ratio)
    # a different draw per cloud, reproducible from the generator
    assert len({tuple(r.tolist()) for r in mask}) >= min(40, groups)
    torch.testing.assert_close(mask, random_group_mask(50, groups, ratio, torch.Generator().manual_seed(0)))


def test_default_masks_60_percent_of_64_groups_per_cloud():
    m = PointMAE(PointMAEConfig(), PointInfo())
    torch.manual_seed(0)
    batch = pretext_batch(m, [torch.rand(1024, 3) for _ in range(20)])
    assert batch["mask"].shape == (20, 64)
    assert (batch["mask"].sum(1) == 38).all()  # int(0.6 * 64), Point-MAE's count
    # every position masked about 60% of the time
    share = random_group_mask(4000, 64, 0.6, torch.Generator().manual_seed(1)).float().mean(0)
    assert (share - 38 / 64).abs().max() < 0.04


def test_mask_ratio_and_size_errors():
    with pytest.raises(ConfigError, match="mask ratio"):
        small_method(mask_ratio=1.0)
    with pytest.raises(ConfigError, match="mask ratio"):
        random_group_mask(2, 16, 0.0)
    with pytest.raises(ConfigError, match="cannot make 16 groups.*num_points"):
        PointMAE(PointMAEConfig(backbone=PointTransformerConfig(**SMALL_PT)), PointInfo(num_points=12))
    with pytest.raises(ConfigError, match="decoder width"):
        MaskedGroupDecoder(30, 1, 4)


def test_encoder_never_sees_masked_groups():
    torch.manual_seed(0)
    m = small_method().train()  # train mode: BatchNorm statistics would leak masked groups if they were embedded
    batch = batch_of(m)
    centres, groups = m.backbone.group(batch["points"])
    mask = batch["mask"]
    visible, vis_centres = m.encode_visible(groups, centres, mask)
    noisy_groups = torch.where(mask[..., None, None], groups + torch.randn_like(groups), groups)
    noisy_centres = torch.where(mask[..., None], centres + torch.randn_like(centres), centres)
    visible2, vis_centres2 = m.encode_visible(noisy_groups, noisy_centres, mask)
    torch.testing.assert_close(visible2, visible)
    torch.testing.assert_close(vis_centres2, vis_centres)
    assert visible.shape == (4, 16 - num_masked_groups(16, 0.6), 32)
    # while the visible groups do matter
    noisy_groups = torch.where(mask[..., None, None], groups, groups + torch.randn_like(groups))
    assert not torch.allclose(m.encode_visible(noisy_groups, centres, mask)[0], visible)


def test_split_groups_keeps_group_order():
    x = torch.randn(3, 10, 4, 2)
    mask = random_group_mask(3, 10, 0.6, torch.Generator().manual_seed(0))
    vis, masked = split_groups(x, mask)
    for i in range(3):
        torch.testing.assert_close(vis[i], x[i, [j for j in range(10) if not mask[i, j]]])
        torch.testing.assert_close(masked[i], x[i, [j for j in range(10) if mask[i, j]]])
    with pytest.raises(ValueError, match="same number"):
        split_groups(x, torch.tensor([[True] + [False] * 9, [False] * 10, [False] * 10]))


def test_decoder_mask_tokens_follow_their_positions():
    torch.manual_seed(0)
    dec = MaskedGroupDecoder(16, 2, 2).eval()
    vis, vis_pos, masked_pos = torch.randn(2, 5, 16), torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    out = dec(vis, vis_pos, masked_pos)
    assert out.shape == (2, 7, 16)
    perm = torch.randperm(7)
    torch.testing.assert_close(dec(vis, vis_pos, masked_pos[:, perm]), out[:, perm], atol=1e-5, rtol=1e-5)
    # the same mask token everywhere: masked outputs differ only through their positions and the visible tokens
    same = dec(vis, vis_pos, masked_pos[:, :1].expand(-1, 7, -1))
    torch.testing.assert_close(same, same[:, :1].expand_as(same), atol=1e-5, rtol=1e-5)


def test_pretext_is_point_mae_scale_and_translate():
    m = small_method()
    pretext = m.pretext()
    pts = torch.rand(128, 3) * 2 - 1
    torch.manual_seed(0)
    for _ in range(20):
        item = pretext(pts)
        out = item["points"]
        assert out.shape == (128, 3) and out.dtype == torch.float32 and item["mask"].shape == (16,)
        # out = pts * s + t per axis: recover s and t by least squares
        a = torch.stack([pts, torch.ones_like(pts)], dim=-1)  # (N, 3, 2)
        for axis in range(3):
            s, t = torch.linalg.lstsq(a[:, axis], out[:, axis : axis + 1]).solution[:, 0]
            assert 2 / 3 - 1e-4 <= s <= 1.5 + 1e-4 and -0.2 - 1e-4 <= t <= 0.2 + 1e-4
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        pretext(torch.rand(2, 128, 3))

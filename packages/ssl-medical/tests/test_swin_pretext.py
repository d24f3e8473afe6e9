"""Tang et al.'s pretext (rotations, inpainting boxes, cross-sample pasting) and the shared multi-task heads and
losses, against naive references."""

import pytest
import torch
import torch.nn.functional as F

from ssl_core.errors import ConfigError
from ssl_medical.methods.common import (
    TASKS,
    MultiTaskObjective,
    MultiTaskSSLConfig,
    SSLHeads,
    deconv_decoder,
    flatten_views,
    task_losses,
)
from ssl_medical.pretext.swin import SwinPretext, box_mask, random_boxes


def patch(seed=0, side=16):
    return torch.rand(1, side, side, side, generator=torch.Generator().manual_seed(seed))


def test_views_are_rotations_of_the_patch_changed_only_in_the_boxes():
    torch.manual_seed(0)
    pre = SwinPretext()
    seen = set()
    for seed in range(12):
        x = patch(seed)
        item = pre(x)
        assert item["views"].shape == item["targets"].shape == item["mask"].shape == (2, 1, 16, 16, 16)
        assert item["rotations"].shape == (2,) and item["rotations"].dtype == torch.long
        for v in range(2):
            k = int(item["rotations"][v])
            seen.add(k)
            torch.testing.assert_close(item["targets"][v], torch.rot90(x, k, (2, 3)))
            m = item["mask"][v]
            view, target = item["views"][v], item["targets"][v]
            assert torch.equal(view[~m], target[~m])  # outside the boxes: untouched
            assert view[m].min() >= 0 and view[m].max() <= 1  # noise min-max scaled into [0, 1]
            if m.any():
                assert not torch.equal(view[m], target[m])
    assert seen == {0, 1, 2, 3}


def test_rotation_label_matches_torch_rot90_on_a_marked_voxel():
    x = torch.zeros(1, 8, 8, 8)
    x[0, 1, 0, 0] = 1.0  # a voxel in the corner of the (H, W) plane
    pre = SwinPretext(max_drop=0.0)
    torch.manual_seed(3)
    for _ in range(8):
        item = pre(x)
        for v in range(2):
            k = int(item["rotations"][v])
            where = item["targets"][v].nonzero().tolist()
            expected = {0: [0, 1, 0, 0], 1: [0, 1, 7, 0], 2: [0, 1, 7, 7], 3: [0, 1, 0, 7]}[k]
            assert where == [expected]
            assert torch.equal(item["views"][v], item["targets"][v])  # max_drop=0: no boxes


def test_boxes_cover_the_drawn_share_within_bounds():
    g = torch.Generator().manual_seed(0)
    shares = []
    for _ in range(200):
        boxes = random_boxes((32, 32, 32), 0.3, 0.25, 0.05, g)
        for box in boxes:
            for s in box:
                assert 0 <= s.start < s.stop <= 32 and 1 <= s.stop - s.start < 8
        counted = sum((b[0].stop - b[0].start) * (b[1].stop - b[1].start) * (b[2].stop - b[2].start) for b in boxes)
        shares.append(box_mask((1, 32, 32, 32), boxes).float().mean().item())
        assert counted <= 0.3 * 32**3 + 8**3  # stops once the drawn share is reached
    assert 0.05 < sum(shares) / len(shares) < 0.15  # about U(0, 0.3) / 2 less overlaps


def test_collate_pastes_partner_boxes_and_keeps_the_rest():
    torch.manual_seed(1)
    pre = SwinPretext(max_drop=0.0)
    items = [pre(patch(s)) for s in range(4)]
    pre.max_drop = 0.3  # only the cross-sample boxes of collate
    torch.manual_seed(2)
    batch = pre.collate(items)
    assert batch["views"].shape == (4, 2, 1, 16, 16, 16) and batch["rotations"].shape == (4, 2)
    assert batch["mask"].any()
    for i in range(4):
        for v in range(2):
            m = batch["mask"][i, v]
            assert torch.equal(batch["views"][i, v][~m], batch["targets"][i, v][~m])
            # every pasted voxel comes from one partner's view at the same place
            if m.any():
                pasted = batch["views"][i, v][m]
                assert any(torch.equal(pasted, items[j]["views"][v][m]) for j in range(4) if j != i)
    # without cross_sample the batch is a plain stack
    plain = SwinPretext(cross_sample=False).collate(items)
    assert torch.equal(plain["views"], torch.stack([it["views"] for it in items]))


def test_pretext_errors():
    with pytest.raises(ValueError, match="one \\(C, D, H, W\\) patch"):
        SwinPretext()(torch.rand(16, 16, 16))
    with pytest.raises(ValueError, match="H == W"):
        SwinPretext()(torch.rand(1, 16, 16, 8))
    with pytest.raises(ConfigError, match="max_drop"):
        SwinPretext(max_drop=1.5)
    with pytest.raises(ConfigError, match="tol < max_block"):
        SwinPretext(max_block=0.01)


def tang_contrast(x_i, x_j, temperature=0.5):
    """Tang et al.'s ``Contrast`` (losses/loss.py), written out."""
    n = x_i.shape[0]
    z = torch.cat([F.normalize(x_i, dim=1), F.normalize(x_j, dim=1)])
    sim = F.cosine_similarity(z.unsqueeze(1), z.unsqueeze(0), dim=2)
    pos = torch.cat([torch.diag(sim, n), torch.diag(sim, -n)])
    neg_mask = (~torch.eye(2 * n, dtype=torch.bool)).float()
    denom = (neg_mask * torch.exp(sim / temperature)).sum(1)
    return torch.sum(-torch.log(torch.exp(pos / temperature) / denom)) / (2 * n)


def test_task_losses_match_tang_et_al_values_and_gradients():
    g = torch.Generator().manual_seed(0)
    rot = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    proj = torch.randn(6, 16, generator=g, dtype=torch.float64, requires_grad=True)
    rec = torch.rand(6, 1, 4, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 3, 1, 2])
    targets = torch.rand(6, 1, 4, 4, 4, generator=g, dtype=torch.float64)
    ours = task_losses(rot, proj, rec, labels, targets, 0.5)
    ref = {
        "rotation": -torch.log_softmax(rot, 1)[torch.arange(6), labels].mean(),
        "contrastive": tang_contrast(proj[:3], proj[3:]),
        "reconstruction": (rec - targets).abs().mean(),
    }
    for k in TASKS:
        torch.testing.assert_close(ours[k], ref[k])
        for a, b in zip(
            torch.autograd.grad(ours[k], [rot, proj, rec], allow_unused=True),
            torch.autograd.grad(ref[k], [rot, proj, rec], allow_unused=True),
            strict=True,
        ):
            if a is None or b is None:
                assert a is None and b is None
            else:
                torch.testing.assert_close(a, b)
    with pytest.raises(ConfigError, match="does not match the patch"):
        task_losses(rot, proj, rec, labels, targets[..., :2], 0.5)


def test_heads_shapes_and_deconv_decoder():
    heads = SSLHeads(48, 1, 3, proj_dim=32)
    rot, proj, rec = heads(torch.rand(5, 48, 2, 2, 2))
    assert rot.shape == (5, 4) and proj.shape == (5, 32) and rec.shape == (5, 1, 16, 16, 16)
    dec = deconv_decoder(192, 1, 5)
    assert [m.out_channels for m in dec] == [96, 48, 24, 12, 1]
    with pytest.raises(ConfigError, match="at least one upsampling"):
        deconv_decoder(8, 1, 0)


def _batch(n=3, side=16, seed=0):
    torch.manual_seed(seed)
    pre = SwinPretext()
    return pre.collate([pre(patch(s, side)) for s in range(n)])


@pytest.mark.parametrize("weighting", ["fixed", "uncertainty", "mgda"])
def test_objective_weightings(weighting):
    torch.manual_seed(0)
    enc = torch.nn.Conv3d(1, 8, 4, stride=4)
    obj = MultiTaskObjective(MultiTaskSSLConfig(weighting=weighting, proj_dim=16), 8, 1, 2)
    batch = _batch()
    out = obj(batch, enc, list(enc.parameters()))
    x, targets, rots = flatten_views(batch)
    assert x.shape == (6, 1, 16, 16, 16) and torch.equal(rots[:3], batch["rotations"][:, 0])
    losses = {k: out.logs[f"loss_{k}"] for k in TASKS}
    if weighting == "fixed":
        torch.testing.assert_close(out.loss.detach(), sum(losses.values()))
    elif weighting == "uncertainty":  # zero log-variances at start: half of each loss
        torch.testing.assert_close(out.loss.detach(), 0.5 * sum(losses.values()))
    else:
        w = [out.logs[f"w_{k}"] for k in TASKS]
        assert min(w) >= 0 and abs(sum(w) - 1) < 1e-5
    out.loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())
    assert 0 <= float(out.logs["rot_acc"]) <= 1


def test_config_errors():
    with pytest.raises(ConfigError, match="weighting"):
        MultiTaskSSLConfig(weighting="sum").check()
    with pytest.raises(ConfigError, match="temperature"):
        MultiTaskSSLConfig(temperature=0).check()


def test_mgda_scales_the_encoder_gradient_and_leaves_each_head_its_own():
    torch.manual_seed(0)
    enc = torch.nn.Conv3d(1, 8, 4, stride=4).double()
    obj = MultiTaskObjective(MultiTaskSSLConfig(weighting="mgda", proj_dim=16), 8, 1, 2).double()
    batch = {k: (v.double() if v.is_floating_point() else v) for k, v in _batch().items()}
    out = obj(batch, enc, list(enc.parameters()))
    out.loss.backward()
    alpha = [out.logs[f"w_{k}"] for k in TASKS]
    x, targets, rots = flatten_views(batch)
    rot, proj, rec = obj.heads(enc(x))
    losses = task_losses(rot, proj, rec, rots, targets, 0.5)
    ref = torch.autograd.grad(
        sum(a * losses[k] for a, k in zip(alpha, TASKS, strict=True)), list(enc.parameters()), retain_graph=True
    )
    for p, r in zip(enc.parameters(), ref, strict=True):
        torch.testing.assert_close(p.grad, r)
    heads = {
        "rotation": obj.heads.rotation,
        "contrastive": obj.heads.contrastive,
        "reconstruction": obj.heads.reconstruction,
    }
    for k, mod in heads.items():
        for p, r in zip(
            mod.parameters(), torch.autograd.grad(losses[k], list(mod.parameters()), retain_graph=True), strict=True
        ):
            torch.testing.assert_close(p.grad, r)
    torch.testing.assert_close(out.loss.detach(), sum(losses.values()).detach())

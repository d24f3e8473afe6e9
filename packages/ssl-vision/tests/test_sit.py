"""SiT: the group-masked corruption, the rotated views, each task loss and their weighting against naive
references (values and gradients), the rotation token's attention mask, and training on a fixed batch."""

import pickle

import pytest
import torch

from ssl_core.errors import ConfigError
from ssl_core.testing import begin_step, fit_fixed_batch, pretext_batch, without_gradient
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.sit import SiT, SiTConfig
from ssl_vision.models.vit import ViTConfig, unpatchify
from ssl_vision.pretext.corruption import KINDS, CorruptionConfig, corrupt, pixel_mask, rotate
from ssl_vision.transforms.views import ViewConfig

INFO = ImageInfo(channels=1, image_size=16, mean=[0.5], std=[0.5])
# the tiny setting: one ViT-tiny block, 4-pixel patches of 16x16 images (a 4x4 grid, as 7-pixel patches of 28x28)
TINY = dict(backbone=ViTConfig(depth=1), proj_dim=16)


def tiny(**kw) -> SiT:
    torch.manual_seed(0)
    m = SiT(SiTConfig(**{**TINY, **kw}), INFO)
    begin_step(m)
    return m


def make_batch(method, n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 16, 16), generator=g, dtype=torch.uint8)
    torch.manual_seed(seed)
    return pretext_batch(method, images)


# ---------------------------------------------------------------- corruption


def test_pixel_mask_spreads_each_patch_over_its_pixels():
    mask = torch.rand(3, 16) < 0.5
    pix = pixel_mask(mask, 4)
    assert pix.shape == (3, 1, 16, 16) and pix.dtype == torch.bool
    for b in range(3):
        for i in range(16):
            r, c = divmod(i, 4)
            block = pix[b, 0, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4]
            assert bool(block.all()) if mask[b, i] else not bool(block.any())


def test_corrupt_changes_only_the_masked_groups_as_each_kind_says():
    torch.manual_seed(0)
    images, noise = torch.randn(6, 2, 16, 16), torch.randn(6, 2, 16, 16)
    mask = torch.rand(6, 16) < 0.5
    kind = torch.tensor([0, 1, 2, 0, 1, 2])
    out = corrupt(images, mask, kind, noise, 4)
    for b in range(6):
        for i in range(16):
            r, c = divmod(i, 4)
            box = (slice(None), slice(4 * r, 4 * r + 4), slice(4 * c, 4 * c + 4))
            if not mask[b, i]:
                assert torch.equal(out[b][box], images[b][box])  # untouched
            elif KINDS[kind[b]] == "noise":
                assert torch.equal(out[b][box], noise[b][box])
            elif KINDS[kind[b]] == "zeros":
                assert not out[b][box].any()
            else:  # replaced by the next image of the batch
                assert torch.equal(out[b][box], images[(b + 1) % 6][box])


def test_rotate_matches_rot90_per_image():
    x = torch.randn(8, 1, 6, 6)
    r = torch.arange(8) % 4
    out = rotate(x, r)
    for i in range(8):
        assert torch.equal(out[i], torch.rot90(x[i], int(r[i]), dims=(1, 2)))


def test_views_are_corrupted_on_block_masked_groups_only():
    m = tiny(corruption=CorruptionConfig(kinds=["noise", "zeros", "replace"]))
    batch = make_batch(m, n=16)
    clean, corrupted, mask = batch["clean"], batch["corrupted"], batch["mask"]
    assert clean.shape == corrupted.shape == (32, 1, 16, 16) and mask.shape == (32, 16)
    assert set(batch["rotation"].tolist()) <= {0, 1, 2, 3}
    pix = pixel_mask(mask, 4).expand_as(clean)
    assert torch.equal(corrupted[~pix], clean[~pix])  # uncorrupted pixels untouched
    changed = (corrupted != clean).flatten(1).any(1)
    assert changed.float().mean() > 0.9  # masked patches are changed (a replacement can rarely coincide)
    # block_mask's groups: about half the patches, never more than the target, in connected blocks
    counts = mask.sum(1)
    assert counts.max() <= 8 and counts.float().mean() >= 6
    for row in mask.view(-1, 4, 4):
        assert _connected_blocks(row) <= 4  # groups of >= 2 patches (a last block may be a single patch)


def _connected_blocks(grid: torch.Tensor) -> int:
    """Number of 4-connected components of True cells (a naive flood fill)."""
    seen, n = set(), 0
    cells = {(r, c) for r in range(grid.shape[0]) for c in range(grid.shape[1]) if grid[r, c]}
    for start in cells:
        if start in seen:
            continue
        n += 1
        stack = [start]
        while stack:
            r, c = stack.pop()
            if (r, c) in seen:
                continue
            seen.add((r, c))
            stack += [q for q in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)) if q in cells]
    return n


def test_clean_views_are_the_rotated_augmented_views():
    m = tiny(views=ViewConfig(crop_scale=[1.0, 1.0], crop_ratio=[1.0, 1.0], hflip=0.0, jitter_prob=0.0))
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (4, 1, 16, 16), generator=g, dtype=torch.uint8)
    torch.manual_seed(0)
    batch = pretext_batch(m, images)
    plain = (images.float() / 255 - 0.5) / 0.5
    for v in range(2):
        for i in range(4):
            want = torch.rot90(plain[i], int(batch["rotation"][4 * v + i]), dims=(1, 2))
            torch.testing.assert_close(batch["clean"][4 * v + i], want)


def test_pretext_is_picklable_and_seeded():
    m = tiny()
    pickle.loads(pickle.dumps(m.pretext()))
    a, b = make_batch(m, seed=3), make_batch(m, seed=3)
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- tokens, losses and their weighting


def test_class_and_patch_tokens_ignore_the_rotation_token():
    m = tiny()
    x = torch.randn(3, 1, 16, 16)
    out = m.encode(x)
    assert out.shape == (3, 18, 192)
    torch.testing.assert_close(out[:, :-1], m.backbone.forward_features(x), atol=1e-5, rtol=1e-5)
    # with one block, the rotation token's row is that of an unmasked block on the whole sequence
    vit = m.backbone
    seq = torch.cat(
        [vit.cls_token.expand(3, -1, -1), vit.patch_embed(x) + vit.pos_embed, m.rot_token.expand(3, -1, -1)], 1
    )
    torch.testing.assert_close(out[:, -1], vit.norm(vit.blocks[0](seq))[:, -1], atol=1e-5, rtol=1e-5)
    m.eval()
    torch.testing.assert_close(m.embed(x), out[:, 0], atol=1e-5, rtol=1e-5)


def _naive_losses(m: SiT, batch, x):
    """Each task's loss from the encoder's output ``x``, recomputed per sample with Python loops."""
    n2 = len(x)
    recon = unpatchify(m.recon_head(x[:, 1:-1]), 4, 1)  # (2B, 1, 16, 16)
    pix = pixel_mask(batch["mask"], 4)
    if m.config.recon_on == "all":
        pix = torch.ones_like(pix)
    num, den = 0.0, 0
    for i in range(n2):
        sel = pix[i]
        num = num + (recon[i][sel] - batch["clean"][i][sel]).abs().sum()
        den += int(sel.sum())
    rec = num / den
    logits = m.rot_head(x[:, -1])
    rot = sum(-torch.log_softmax(logits[i], 0)[batch["rotation"][i]] for i in range(n2)) / n2
    z = m.contrastive_head(x[:, 0])
    z = z / z.norm(dim=1, keepdim=True)
    b, t = n2 // 2, m.config.temperature
    con = 0.0
    for i in range(n2):
        pos = (i + b) % n2
        others = [torch.exp(z[i] @ z[k] / t) for k in range(n2) if k != i]
        con = con - torch.log(torch.exp(z[i] @ z[pos] / t) / sum(others))
    return {"reconstruction": rec, "rotation": rot, "contrastive": con / n2}


@pytest.mark.parametrize("recon_on", ["corrupted", "all"])
def test_losses_and_uncertainty_weighting_match_a_naive_reference(recon_on):
    m = tiny(recon_on=recon_on)
    with torch.no_grad():
        m.loss_weighting.log_vars.copy_(torch.tensor([0.3, -0.2, 0.5]))
    batch = make_batch(m)
    params = [p for p in m.parameters() if p.requires_grad]
    out = m(batch)
    x = m.encode(batch["corrupted"])
    naive = _naive_losses(m, batch, x)
    for k, v in naive.items():
        torch.testing.assert_close(out.logs[f"{k}_loss"], v.detach(), atol=1e-5, rtol=1e-5)
    s = m.loss_weighting.log_vars
    total = sum(
        0.5 * torch.exp(-s[i]) * naive[k] + 0.5 * s[i]
        for i, k in enumerate(["reconstruction", "rotation", "contrastive"])
    )
    torch.testing.assert_close(out.loss, total, atol=1e-5, rtol=1e-5)
    g_method = torch.autograd.grad(out.loss, params)
    g_naive = torch.autograd.grad(total, params)
    for a, b in zip(g_method, g_naive, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_fixed_weighting_sums_the_weighted_losses():
    w = {"reconstruction": 2.0, "rotation": 0.5, "contrastive": 1.5}
    m = tiny(weighting="fixed", weights=w)
    out = m(make_batch(m))
    want = sum(w[k] * out.logs[f"{k}_loss"] for k in w)
    torch.testing.assert_close(out.loss.detach(), want)
    assert not [n for n, _ in m.named_parameters() if "log_vars" in n]


def test_gradients_reach_every_trainable_parameter():
    m = tiny(proj_layers=2, proj_hidden_dim=16)
    m(make_batch(m)).loss.backward()
    assert without_gradient(m) == []


def test_loss_falls_on_a_fixed_batch():
    m = tiny()
    batch = make_batch(m, n=4)
    first = {k: float(v) for k, v in m(batch).logs.items() if k.endswith("_loss")}
    losses = fit_fixed_batch(m, batch, steps=12, lr=2e-3)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    last = {k: float(v) for k, v in m(batch).logs.items() if k.endswith("_loss")}
    assert all(last[k] < first[k] for k in first), (first, last)


@pytest.mark.parametrize(
    "kw, words",
    [
        (dict(recon_on="masked"), "recon_on"),
        (dict(temperature=0.0), "temperature"),
        (dict(views=ViewConfig(size=8)), "views.size"),
        (dict(weighting="uncertainty", weights={"rotation": 2.0}), "weights"),
        (dict(weighting="best"), "weighting"),
    ],
)
def test_bad_configs_say_what_to_fix(kw, words):
    with pytest.raises(ConfigError, match=words):
        SiT(SiTConfig(**{**TINY, **kw}), INFO)


@pytest.mark.parametrize(
    "kw, words",
    [(dict(mask_ratio=1.0), "mask_ratio"), (dict(kinds=["blur"]), "kinds"), (dict(min_block_patches=0), "block")],
)
def test_bad_corruptions_say_what_to_fix(kw, words):
    with pytest.raises(ConfigError, match=words):
        CorruptionConfig(**kw)

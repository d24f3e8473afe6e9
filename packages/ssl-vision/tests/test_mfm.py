"""MFM: the pseudo-label weighting, the feature masking, the decoder on rebuilt features and the whole loss of
each mode against naive references (values and gradients), gradients to every parameter, a falling loss on a
fixed batch, and the mean IoU of ``head_scores`` on a toy segmenter."""

import dataclasses
import sys
import types

import pytest
import torch
import torch.nn.functional as F

from ssl_core.errors import ConfigError
from ssl_core.testing import begin_step, fit_fixed_batch, pretext_batch, without_gradient
from ssl_core.train.checkpoint import load_weights, save_checkpoint
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.mfm import (
    IGNORE_INDEX,
    MFM,
    MFMConfig,
    class_mix,
    class_mix_mask,
    pseudo_labels,
    weighted_pixel_ce,
)
from ssl_vision.models.segmentation import Rebuilder, SegmentationDecoder
from ssl_vision.models.vit import ViTConfig

S, K = 16, 5  # 16x16 scenes, 4x4 tokens of 4-pixel patches; background + 4 classes
# low threshold: a random teacher's pixels count, so the pseudo-label terms carry gradient from the first step
TINY = dict(backbone=ViTConfig(patch_size=4, depth=1), decoder_hidden=16, pseudo_threshold=0.2, head_scenes=6)


def scene_info() -> ImageInfo:
    """Scene data's info (the loader sets ``scenes``; any non-None value marks scene data here)."""
    info = ImageInfo(channels=1, image_size=S, mean=[0.3], std=[0.25], num_classes=K - 1)
    info.scenes = "scenes"
    return info


def tiny(mode="mfm", **kw):
    torch.manual_seed(0)
    m = MFM(MFMConfig(mode=mode, **{**TINY, **kw}), scene_info())
    begin_step(m)
    return m


def domain_items(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):  # labels constant on 4x4 patches, which the source pixels show under noise
        labels = torch.randint(0, K, (S // 4, S // 4), generator=g).repeat_interleave(4, 0).repeat_interleave(4, 1)
        noise = torch.randint(0, 30, (2, 1, S, S), generator=g)
        items.append({
            "source": (labels[None] * 40 + noise[0]).to(torch.uint8),
            "source_labels": labels,
            "target": (255 - labels[None] * 40 - noise[1]).to(torch.uint8),
        })  # fmt: skip
    return items


def make_batch(m, n=4, seed=0):
    torch.manual_seed(seed)
    return pretext_batch(m, domain_items(n, seed))


# ---- naive references ---------------------------------------------------------------------------------------


def naive_pseudo(teacher_logits, threshold):
    """Per pixel: argmax and confidence of a hand-written softmax; the weight counts confident pixels."""
    b, k, h, w = teacher_logits.shape
    labels, confident = torch.zeros(b, h, w, dtype=torch.long), 0
    for i in range(b):
        for y in range(h):
            for x in range(w):
                e = [float(torch.exp(teacher_logits[i, c, y, x].double())) for c in range(k)]
                best = max(range(k), key=lambda c: e[c])
                labels[i, y, x] = best
                confident += e[best] / sum(e) >= threshold
    return labels, confident / (b * h * w)


def naive_ce(logits, labels, weight):
    """Per sample and pixel: -log softmax of the labelled class, times the weight (a number or a per-pixel
    ``(B, H, W)`` tensor), averaged."""
    total, count = 0.0, 0
    for i in range(len(logits)):
        logp = logits[i] - torch.logsumexp(logits[i], dim=0, keepdim=True)  # (K, H, W)
        for y in range(logits.shape[2]):
            for x in range(logits.shape[3]):
                w = weight[i, y, x] if torch.is_tensor(weight) and weight.dim() == 3 else weight
                total = total - w * logp[labels[i, y, x], y, x]
                count += 1
    return total / count


def naive_class_mix(source, target, source_labels, pseudo, weight, mix):
    """Per pixel: the source pixel, its label and weight 1 where mixed, else the target's, its pseudo-label and
    the quality weight."""
    images, labels = target.clone(), pseudo.clone()
    weights = torch.full(pseudo.shape, float(weight))
    for i in range(len(source)):
        for y in range(source.shape[2]):
            for x in range(source.shape[3]):
                if mix[i, y, x]:
                    images[i, :, y, x] = source[i, :, y, x]
                    labels[i, y, x] = source_labels[i, y, x]
                    weights[i, y, x] = 1.0
    return images, labels, weights


def naive_mask(features, mask, token):
    out = features.clone()
    for i in range(features.shape[0]):
        for j in range(features.shape[1]):
            if mask[i, j]:
                out[i, j] = token[0, 0]
    return out


def naive_loss(m, batch):
    """The loss of ``m`` rebuilt sample by sample from its modules: source CE, the batch's pseudo-labels and
    quality weight from the teacher, weighted CE on the target, and (mfm) the decoder on the Rebuilder's
    output from hand-masked tokens."""
    c, mode = m.config, m.config.mode
    src, lab, tgt, mask = batch["source"], batch["source_labels"], batch["target"], batch["mask"]
    n = len(src)
    enc = lambda net, x: net.forward_features(x)[:, 1:]  # noqa: E731
    loss = sum(naive_ce(m.decoder(enc(m.backbone, src[i : i + 1]), S), lab[i : i + 1], 1.0) for i in range(n)) / n
    if mode == "source_only":
        return loss
    t = m.teacher.module
    with torch.no_grad():
        t_logits = torch.cat([t["decoder"](enc(t["backbone"], tgt[i : i + 1]), S) for i in range(n)])
    plab, weight = naive_pseudo(t_logits, c.pseudo_threshold)
    weight = torch.full(plab.shape, float(weight))
    if c.class_mix:
        tgt, plab, weight = naive_class_mix(src, tgt, lab, plab, weight[0, 0, 0], batch["mix"])
    tgt_tokens = [enc(m.backbone, tgt[i : i + 1]) for i in range(n)]
    loss = loss + sum(naive_ce(m.decoder(tgt_tokens[i], S), plab[i : i + 1], weight[i : i + 1]) for i in range(n)) / n
    if mode == "mfm":
        r = m.rebuilder
        mfm = 0.0
        for i in range(n):
            x = naive_mask(tgt_tokens[i], mask[i : i + 1], r.mask_token) + r.pos_embed
            for block in r.blocks:
                x = block(x)
            mfm = mfm + naive_ce(m.decoder(r.out(r.norm(x)), S), plab[i : i + 1], weight[i : i + 1])
        loss = loss + c.mfm_weight * mfm / n
    return loss


# ---- tests --------------------------------------------------------------------------------------------------


def test_pseudo_labels_and_weighted_ce_match_naive():
    torch.manual_seed(1)
    logits = torch.randn(2, 4, 3, 5) * 3
    labels, weight = pseudo_labels(logits, 0.8)
    ref_labels, ref_weight = naive_pseudo(logits, 0.8)
    assert torch.equal(labels, ref_labels)
    assert 0 < ref_weight < 1 and float(weight) == pytest.approx(ref_weight)
    student = torch.randn(2, 4, 3, 5, requires_grad=True)
    loss = weighted_pixel_ce(student, labels, weight)
    ref = naive_ce(student, ref_labels, ref_weight)
    torch.testing.assert_close(loss, ref.float())
    g, g_ref = torch.autograd.grad(loss, student)[0], torch.autograd.grad(ref, student)[0]
    torch.testing.assert_close(g, g_ref.float())
    # the teacher's logits get no gradient through the pseudo-labels or the weight
    t = logits.clone().requires_grad_(True)
    assert not pseudo_labels(t, 0.8)[1].requires_grad


def test_feature_masking_matches_naive_and_hides_masked_tokens():
    torch.manual_seed(2)
    feats = torch.randn(3, 16, 8, requires_grad=True)
    mask = torch.rand(3, 16) < 0.5
    r = Rebuilder(8, 4, depth=1, heads=2)
    out = Rebuilder.mask_features(feats, mask, r.mask_token)
    ref = naive_mask(feats, mask, r.mask_token)
    torch.testing.assert_close(out, ref)
    g = torch.autograd.grad(out.sum(), [feats, r.mask_token])
    g_ref = torch.autograd.grad(ref.sum(), [feats, r.mask_token])
    for a, b in zip(g, g_ref, strict=True):
        torch.testing.assert_close(a, b)
    assert torch.equal(g[0] == 0, mask[..., None].expand_as(feats))  # masked features get no gradient
    # the rebuilt map does not depend on what was under the mask
    other = torch.where(mask[..., None], torch.randn_like(feats), feats)
    torch.testing.assert_close(r(feats, mask), r(other, mask))
    assert r(feats, mask).shape == feats.shape


def test_decoder_shapes_and_upsampling():
    torch.manual_seed(3)
    d = SegmentationDecoder(8, K, grid=4, hidden=6)
    tokens = torch.randn(2, 16, 8)
    tok = d.token_logits(tokens)
    assert tok.shape == (2, K, 4, 4)
    up = d(tokens, S)
    assert up.shape == (2, K, S, S)
    torch.testing.assert_close(up, F.interpolate(tok, size=(S, S), mode="bilinear", align_corners=False))
    with pytest.raises(ValueError, match="16 tokens"):
        d(torch.randn(2, 9, 8), S)


def test_class_mix_matches_naive_and_pastes_half_of_the_classes():
    torch.manual_seed(4)
    labels = torch.randint(0, 5, (3, 6, 7))
    labels[2] = torch.where(labels[2] == 4, 3, labels[2])  # 4 classes in the last scene
    labels[1, 0, :3] = IGNORE_INDEX
    mix = torch.stack([class_mix_mask(lab) for lab in labels])
    for lab, mx in zip(labels, mix, strict=True):
        present = set(lab.unique().tolist()) - {IGNORE_INDEX}
        pasted = set(lab[mx].unique().tolist())
        assert len(pasted) == (len(present) + 1) // 2 and pasted <= present
        assert torch.equal(mx, torch.isin(lab, torch.tensor(sorted(pasted))))  # whole classes, never IGNORE
    source = torch.randn(3, 2, 6, 7, requires_grad=True)
    target = torch.randn(3, 2, 6, 7, requires_grad=True)
    pseudo = torch.randint(0, 5, (3, 6, 7))
    out = class_mix(source, target, labels, pseudo, torch.tensor(0.3), mix)
    ref = naive_class_mix(source, target, labels, pseudo, 0.3, mix)
    for a, b in zip(out, ref, strict=True):
        torch.testing.assert_close(a, b)
    assert not out[2].requires_grad
    g = torch.autograd.grad((out[0] * ref[0].detach()).sum(), [source, target])
    g_ref = torch.autograd.grad((ref[0] * ref[0].detach()).sum(), [source, target])
    for a, b in zip(g, g_ref, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("mode", ["mfm", "self_training", "source_only"])
def test_loss_matches_naive_reference_values_and_gradients(mode):
    m = tiny(mode, mfm_weight=0.7)
    batch = make_batch(m, n=2)
    if mode != "source_only":
        assert batch["mix"].any() and not batch["mix"].all()
    out = m(batch)
    ref = naive_loss(m, batch)
    torch.testing.assert_close(out.loss, ref.float(), rtol=1e-4, atol=1e-5)
    params = [p for p in m.parameters() if p.requires_grad]
    g = torch.autograd.grad(out.loss, params, allow_unused=True)
    g_ref = torch.autograd.grad(ref, params, allow_unused=True)
    for a, b in zip(g, g_ref, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b.float(), rtol=1e-3, atol=1e-6)
    if mode != "source_only":
        assert 0 < float(out.logs["pseudo_weight"]) <= 1


@pytest.mark.parametrize("mode", ["mfm", "self_training", "source_only"])
def test_gradient_reaches_every_trainable_parameter_and_not_the_teacher(mode):
    m = tiny(mode)
    m(make_batch(m)).loss.backward()
    assert without_gradient(m) == []
    assert all(not p.requires_grad for k, p in m.named_parameters() if k.startswith("teacher."))
    assert hasattr(m, "rebuilder") == (mode == "mfm") and hasattr(m, "teacher") == (mode != "source_only")


def test_checkpoint_round_trip_and_embedding(tmp_path):
    m = tiny("mfm")
    m.after_optimizer_step(0, {"ema_momentum": 0.5, "lr": 1e-3, "weight_decay": 0.0})
    path = save_checkpoint(tmp_path, 1, m, {}, {})
    other = tiny("mfm", mask_ratio=0.3)
    load_weights(other, path)
    for (k, a), b in zip(m.state_dict().items(), other.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=k)
    m.eval()
    x = torch.randn(3, 1, S, S)
    assert m.embed(x).shape == (3, m.backbone_spec().embed_dim)
    assert m.segment(x).shape == (3, K, S, S)


def test_teacher_follows_the_student_by_ema():
    m = tiny("mfm")
    with torch.no_grad():
        for p in m.decoder.parameters():
            p.add_(1.0)
    before = [p.clone() for p in m.teacher.module["decoder"].parameters()]
    m.after_optimizer_step(0, {"ema_momentum": 0.75, "lr": 1e-3, "weight_decay": 0.0})
    for t, b, s in zip(m.teacher.module["decoder"].parameters(), before, m.decoder.parameters(), strict=True):
        torch.testing.assert_close(t, 0.75 * b + 0.25 * s)


def test_loss_falls_on_a_fixed_batch():
    m = tiny("mfm")
    losses = fit_fixed_batch(m, make_batch(m, n=4), steps=12, lr=3e-3)
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3, losses


def test_pretext_flips_source_with_its_labels_and_masks_the_ratio():
    m = tiny("mfm", mask_ratio=0.25)
    items = domain_items(1)
    items[0]["source"] = items[0]["source_labels"][None].to(torch.uint8) * 40  # pixels encode the labels
    flips = 0
    for seed in range(12):
        torch.manual_seed(seed)
        b = pretext_batch(m, items)
        raw = (b["source"] * 0.25 + 0.3) * 255  # undo the normalisation
        torch.testing.assert_close(raw[0, 0].round(), b["source_labels"][0].float() * 40)
        flips += not torch.equal(b["source_labels"][0], items[0]["source_labels"])
        assert b["mask"].shape == (1, 16) and int(b["mask"].sum()) == 4
        # the ClassMix mask covers whole classes of the flipped source labels
        lab, mix = b["source_labels"][0], b["mix"][0]
        assert torch.equal(mix, torch.isin(lab, lab[mix].unique())) and mix.any()
    assert 0 < flips < 12
    assert not pretext_batch(tiny("source_only"), items)["mix"].any()
    assert not pretext_batch(tiny("mfm", class_mix=False), items)["mix"].any()


def naive_miou(pred, target, k):
    ious = []
    for c in range(k):
        inter = int(((pred == c) & (target == c)).sum())
        union = int(((pred == c) | (target == c)).sum())
        if union:
            ious.append(inter / union)
    return sum(ious) / len(ious)


def test_head_scores_computes_the_miou_of_the_method_segmentation(monkeypatch):
    m = tiny("mfm")
    g = torch.Generator().manual_seed(5)
    data = {
        style: (torch.randn(6, 1, S, S, generator=g), torch.randint(0, K, (6, S, S), generator=g))
        for style in ("styled", "clean")
    }
    calls = []

    def fake_split(info, n, split="train", style="clean"):
        calls.append((n, split, style))
        return data[style]

    module = sys.modules.get("ssl_vision.data.scenes")
    if module is None or not hasattr(module, "segmentation_split"):
        module = types.ModuleType("ssl_vision.data.scenes")
        monkeypatch.setitem(sys.modules, "ssl_vision.data.scenes", module)
    monkeypatch.setattr(module, "segmentation_split", fake_split, raising=False)
    # a toy segmenter: class 2 where a pixel is positive, else background
    toy = lambda x: F.one_hot((x[:, 0] > 0).long() * 2, K).permute(0, 3, 1, 2).float()  # noqa: E731
    monkeypatch.setattr(m, "segment", toy)
    m.eval()
    scores = m.head_scores(types.SimpleNamespace(info=m.info), torch.device("cpu"))
    assert sorted(calls) == [(6, "test", "clean"), (6, "test", "styled")]
    for column, style in (("target_miou", "styled"), ("source_miou", "clean")):
        images, labels = data[style]
        expected = naive_miou(toy(images).argmax(1), labels, K)
        assert scores[column] == pytest.approx(expected)
        # per-class counts accumulate over batches: the same score in batches of 4
        assert m.segmentation_miou(images, labels, torch.device("cpu"), batch_size=4) == pytest.approx(expected)


def test_bad_data_and_config_raise_config_errors():
    with pytest.raises(ConfigError, match="scene_items=domains"):
        MFM(MFMConfig(**TINY), ImageInfo(channels=1, image_size=S, mean=[0.5], std=[0.5], num_classes=10))
    m = tiny("mfm")
    with pytest.raises(ConfigError, match="scene_items=domains"):
        m.pretext()(torch.zeros(1, S, S, dtype=torch.uint8))  # plain scene images
    with pytest.raises(ConfigError, match="scene_items=domains"):
        m.pretext()({"image": torch.zeros(1, S, S, dtype=torch.uint8)})
    with pytest.raises(ConfigError, match="mode"):
        MFMConfig(mode="mic")
    with pytest.raises(ConfigError, match="mask_ratio"):
        MFMConfig(mask_ratio=1.0)
    with pytest.raises(ConfigError, match="pseudo_threshold"):
        MFMConfig(pseudo_threshold=1.5)
    assert dataclasses.replace(MFMConfig(), mode="source_only").mode == "source_only"

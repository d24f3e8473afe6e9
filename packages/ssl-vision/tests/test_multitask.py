import dataclasses
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from ssl_core.data import LabeledSplit
from ssl_core.errors import ConfigError
from ssl_core.losses import MultiTaskLoss
from ssl_core.testing import fit_fixed_batch, pretext_batch, without_gradient
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.multitask import MultiTask, MultiTaskConfig
from ssl_vision.models.vit import ViTConfig

INFO = ImageInfo(channels=1, image_size=16, mean=[0.5], std=[0.5], num_classes=3)


def tiny_config(**kw):
    vit = ViTConfig(patch_size=4, depth=1, size="tiny")
    return MultiTaskConfig(**{"backbone": vit, "proj_hidden_dim": 16, "proj_dim": 8, **kw})


def items(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 16, 16), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 3, (n,), generator=g)
    return [{"image": x, "label": y} for x, y in zip(images, labels, strict=True)]


def make(seed=0, double=False, **kw):
    torch.manual_seed(seed)
    m = MultiTask(tiny_config(**kw), INFO)
    batch = pretext_batch(m, items(6))
    if double:  # the naive references sum in another order: compare in float64
        m = m.double()
        batch["views"] = tuple(v.double() for v in batch["views"])
    return m, batch


def grads(loss, params):
    return torch.autograd.grad(loss, params, allow_unused=True)


def assert_same(value, ref, params):
    torch.testing.assert_close(value, ref, rtol=1e-9, atol=1e-10)
    for g, r in zip(grads(value, params), grads(ref, params), strict=True):
        assert (g is None) == (r is None)
        if g is not None:
            torch.testing.assert_close(g, r, rtol=1e-7, atol=1e-9)


def naive_cls_and_patches(m, x, mask=None):
    """Per image: patch tokens, mask-token substitution, position embeddings, class token, blocks."""
    vit = m.backbone
    out = []
    for i in range(len(x)):
        tokens = vit.patch_proj(x[i : i + 1]).flatten(2).transpose(1, 2)[0]  # (L, D)
        if mask is not None:
            tokens = torch.stack([m.mask_token[0, 0] if mask[i, k] else tokens[k] for k in range(len(tokens))])
        h = torch.cat([vit.cls_token[0], tokens + vit.pos_embed[0]])[None]
        for block in vit.blocks:
            h = block(h)
        out.append(vit.norm(h)[0])
    return torch.stack(out)  # (B, 1 + L, D)


def test_batch_layout():
    m, batch = make()
    assert len(batch["views"]) == 2 and batch["views"][0].shape == (6, 1, 16, 16)
    assert batch["mask"].shape == (6, 16) and int(batch["mask"][0].sum()) == 16 - int(16 * 0.4)
    m1, b1 = make(tasks=("multilabel",))
    assert len(b1["views"]) == 1 and "mask" not in b1


def test_mim_loss_matches_a_naive_loop():
    m, batch = make(double=True)
    x, mask = batch["views"][0], batch["mask"]
    params = list(m.parameters())
    feats = naive_cls_and_patches(m, x, mask)
    errs, count = [], 0
    for i in range(len(x)):
        for k in range(16):
            if mask[i, k]:
                r, c = divmod(k, 4)
                target = x[i, 0, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4].reshape(-1)
                errs.append((m.pixel_head(feats[i, 1 + k]) - target).abs().mean())
                count += 1
    assert_same(m.task_losses(batch)["mim"], torch.stack(errs).sum() / count, params)


def test_contrastive_loss_matches_a_naive_loop():
    m, batch = make(double=True)
    (x1, x2), mask = batch["views"], batch["mask"]
    params = list(m.parameters())
    cls = torch.cat([naive_cls_and_patches(m, x1, mask)[:, 0], naive_cls_and_patches(m, x2)[:, 0]])
    z = F.normalize(m.projector(cls), dim=1)  # (2B, P): the projector's BatchNorm sees both views
    n, tau, terms = len(x1), 0.2, []
    for a in range(2 * n):
        pos = (a + n) % (2 * n)
        den = sum(torch.exp(z[a] @ z[k] / tau) for k in range(2 * n) if k != a)
        terms.append(-(z[a] @ z[pos] / tau - torch.log(den)))
    assert_same(m.task_losses(batch)["contrastive"], torch.stack(terms).mean(), params)


def test_multilabel_loss_matches_a_naive_loop():
    m, batch = make(double=True)
    (x1, x2), mask, y = batch["views"], batch["mask"], batch["label"]
    params = list(m.parameters())
    cls = torch.cat([naive_cls_and_patches(m, x1, mask)[:, 0], naive_cls_and_patches(m, x2)[:, 0]])
    per_sample = []
    for i in range(len(cls)):
        logits = m.classifier(cls[i])
        label = int(y[i % len(y)])
        per_sample.append(sum(-F.logsigmoid(logits[c]) if c == label else -F.logsigmoid(-logits[c]) for c in range(3)))
    assert_same(m.task_losses(batch)["multilabel"], torch.stack(per_sample).mean(), params)


def test_classify_baseline_is_softmax_cross_entropy_on_one_unmasked_view():
    m, batch = make(double=True, tasks=("classify",))
    x, y = batch["views"][0], batch["label"]
    params = list(m.parameters())
    cls = naive_cls_and_patches(m, x)[:, 0]
    ref = torch.stack([-F.log_softmax(m.classifier(cls[i]), 0)[y[i]] for i in range(len(y))]).mean()
    out = m(batch)
    assert_same(out.loss, ref, params)
    assert not hasattr(m, "weighting")


@pytest.mark.parametrize("weighting", ["uncertainty", "fixed", "mgda"])
def test_the_weighting_is_multitask_loss(weighting):
    kw = {"mim_weight": 2.0, "contrastive_weight": 0.5} if weighting == "fixed" else {}
    m, batch = make(weighting=weighting, **kw)
    assert isinstance(m.weighting, MultiTaskLoss) and m.weighting.weighting == weighting
    if weighting == "uncertainty":
        with torch.no_grad():
            m.weighting.log_vars.copy_(torch.tensor([0.3, -0.2, 0.1]))
    losses = m.task_losses(batch)
    out = m(batch)
    if weighting == "uncertainty":
        s = m.weighting.log_vars
        ref = sum(0.5 * torch.exp(-s[k]) * losses[t] + 0.5 * s[k] for k, t in enumerate(m.config.tasks))
    elif weighting == "fixed":
        ref = 2.0 * losses["mim"] + 0.5 * losses["contrastive"] + losses["multilabel"]
    else:
        w = [out.logs[f"w_{t}"] for t in m.config.tasks]
        assert sum(w) == pytest.approx(1.0) and min(w) >= 0
        ref = sum(wk * losses[t] for wk, t in zip(w, m.config.tasks, strict=True))
    torch.testing.assert_close(out.loss, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"weighting": "mgda"},
        {"tasks": ("mim",)},
        {"tasks": ("contrastive", "multilabel")},
        {"tasks": ("classify",)},
    ],
)
def test_every_parameter_learns(kw):
    m, batch = make(**kw)
    m(batch).loss.backward()
    assert without_gradient(m) == []


@pytest.mark.parametrize("kw", [{"weighting": "fixed"}, {}, {"tasks": ("classify",)}])
def test_loss_falls_on_a_fixed_batch(kw):
    m, batch = make(**kw)
    losses = fit_fixed_batch(m, batch, steps=25)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.2 * abs(first)


def test_head_scores_equal_a_hand_computed_accuracy():
    m, _ = make()
    m.eval()
    with torch.no_grad():  # a head that ignores the image and always answers class 2
        m.classifier.weight.zero_()
        m.classifier.bias.copy_(torch.tensor([0.0, 0.0, 1.0]))
    split = LabeledSplit(list(torch.randn(5, 1, 16, 16)), torch.tensor([2, 0, 2, 1, 2]))
    b = SimpleNamespace(probe_test=split, collate_fn=None)
    assert m.head_scores(b, torch.device("cpu")) == {"multilabel_top1": 3 / 5}
    m2, _ = make(seed=1, tasks=("classify",))
    m2.eval()
    with torch.no_grad():
        pred = [int(m2.classifier(naive_cls_and_patches(m2, x[None])[0, 0]).argmax()) for x in split.inputs]
    want = sum(p == y for p, y in zip(pred, split.labels.tolist(), strict=True)) / 5
    assert m2.head_scores(b, torch.device("cpu")) == {"ce_top1": pytest.approx(want)}
    assert make(tasks=("mim",))[0].head_scores(b, torch.device("cpu")) == {}


def test_bad_config_is_refused():
    with pytest.raises(ConfigError, match="method.tasks"):
        tiny_config(tasks=("mim", "rotation"))
    with pytest.raises(ConfigError, match="classify"):
        tiny_config(tasks=("classify", "mim"))
    with pytest.raises(ConfigError, match="method.weighting"):
        tiny_config(weighting="gradnorm")
    with pytest.raises(ConfigError, match="train_labels"):
        MultiTask(tiny_config(), dataclasses.replace(INFO, num_classes=None))
    MultiTask(tiny_config(tasks=("mim", "contrastive")), dataclasses.replace(INFO, num_classes=None))
    with pytest.raises(ConfigError, match="data.train_labels=true"):
        MultiTask(tiny_config(), INFO).pretext()(torch.zeros(1, 16, 16, dtype=torch.uint8))

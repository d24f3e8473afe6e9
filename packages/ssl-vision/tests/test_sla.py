import dataclasses
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from ssl_core.data import LabeledSplit
from ssl_core.errors import ConfigError
from ssl_core.testing import fit_fixed_batch, pretext_batch, without_gradient
from ssl_vision.data.images import ImageInfo
from ssl_vision.methods.sla import SLA, SLAConfig, rotations
from ssl_vision.models.resnet import ResNetConfig

INFO = ImageInfo(channels=1, image_size=16, mean=[0.5], std=[0.5], num_classes=3)


def tiny_config(**kw):
    return SLAConfig(**{"backbone": ResNetConfig(width=4, stem_stride=2, pool="grid"), **kw})


def items(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 16, 16), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 3, (n,), generator=g)
    return [{"image": x, "label": y} for x, y in zip(images, labels, strict=True)]


def test_rotations_are_exact_quarter_turns_in_joint_label_order():
    x = torch.randn(3, 2, 5, 5)
    r = rotations(x).view(3, 4, 2, 5, 5)
    for j in range(4):
        assert torch.equal(r[:, j], torch.rot90(x, j, (2, 3)))
    assert torch.equal(r[:, 1], x.transpose(2, 3).flip(2))  # one counter-clockwise quarter turn
    assert torch.equal(r[:, 2], x.flip(2).flip(3))


def naive_total_loss(m, x, y):
    """Per sample and per rotation: the joint CE at label y * 4 + j, and KL(aggregated || single head)."""
    ce, sd = [], []
    for i in range(len(x)):
        z = [m.joint_head(m.backbone(torch.rot90(x[i : i + 1], j, (2, 3))))[0] for j in range(4)]
        ce += [-F.log_softmax(z[j], 0)[y[i] * 4 + j] for j in range(4)]
        agg = torch.stack([torch.stack([z[j][c * 4 + j] for j in range(4)]).mean() for c in range(3)]).detach()
        u = m.classifier(m.backbone(x[i : i + 1]))[0]
        p = F.softmax(agg, 0)
        sd.append((p * (torch.log(p) - F.log_softmax(u, 0))).sum())
    return torch.stack(ce).mean() + torch.stack(sd).mean()


def test_loss_and_gradients_match_a_naive_loop():
    torch.manual_seed(0)
    m = SLA(tiny_config(), INFO).eval()  # BatchNorm on running statistics: samples independent
    x, y = torch.randn(4, 1, 16, 16), torch.tensor([0, 2, 1, 2])
    params = [p for p in m.parameters() if p.requires_grad]
    loss = m({"views": (x,), "label": y}).loss
    ref = naive_total_loss(m, x, y)
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-6)
    for g, r in zip(torch.autograd.grad(loss, params), torch.autograd.grad(ref, params), strict=True):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)


def test_ce_mode_is_plain_cross_entropy():
    torch.manual_seed(0)
    m = SLA(tiny_config(mode="ce"), INFO).eval()
    assert m.joint_head is None
    x, y = torch.randn(4, 1, 16, 16), torch.tensor([0, 2, 1, 2])
    ref = torch.stack([F.cross_entropy(m.classifier(m.backbone(x[i : i + 1])), y[i : i + 1]) for i in range(4)]).mean()
    torch.testing.assert_close(m({"views": (x,), "label": y}).loss, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["sla", "ce"])
def test_every_parameter_learns_and_loss_falls_on_a_fixed_batch(mode):
    torch.manual_seed(0)
    m = SLA(tiny_config(mode=mode), INFO)
    batch = pretext_batch(m, items(8))
    assert batch["views"][0].shape == (8, 1, 16, 16) and batch["label"].dtype == torch.int64
    m(batch).loss.backward()
    assert without_gradient(m) == []
    m.zero_grad()
    losses = fit_fixed_batch(m, batch, steps=20)
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def bundle(n=10, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 16, 16, generator=g)
    return SimpleNamespace(probe_test=LabeledSplit(list(x), torch.randint(0, 3, (n,), generator=g)), collate_fn=None)


def test_head_scores_equal_a_per_sample_loop():
    torch.manual_seed(0)
    m = SLA(tiny_config(), INFO).eval()
    b = bundle()
    scores = m.head_scores(b, torch.device("cpu"))
    hits = {"sla_aggregated_top1": 0, "sla_single_top1": 0, "sla_distilled_top1": 0}
    with torch.no_grad():
        for x, y in zip(b.probe_test.inputs, b.probe_test.labels.tolist(), strict=True):
            z = [m.joint_head(m.backbone(torch.rot90(x[None], j, (2, 3))))[0] for j in range(4)]
            agg = [sum(z[j][c * 4 + j] for j in range(4)) for c in range(3)]
            hits["sla_aggregated_top1"] += int(torch.stack(agg).argmax()) == y
            hits["sla_single_top1"] += int(torch.stack([z[0][c * 4] for c in range(3)]).argmax()) == y
            hits["sla_distilled_top1"] += int(m.classifier(m.backbone(x[None]))[0].argmax()) == y
    assert scores == pytest.approx({k: v / 10 for k, v in hits.items()})


def test_head_scores_by_hand():
    """Heads that ignore the image: biases pick class 1 aggregated, 2 from rotation 0 alone, 0 distilled."""
    m = SLA(tiny_config(), INFO).eval()
    bias = torch.zeros(3, 4)  # [class, rotation]
    bias[1] = 1.0  # class 1: 1 under every rotation (mean 1)
    bias[2, 0] = 2.0  # class 2: 2 under rotation 0 only (mean 0.5)
    with torch.no_grad():
        m.joint_head.weight.zero_()
        m.joint_head.bias.copy_(bias.flatten())
        m.classifier.weight.zero_()
        m.classifier.bias.copy_(torch.tensor([1.0, 0.0, 0.0]))
    b = SimpleNamespace(probe_test=LabeledSplit(list(torch.randn(5, 1, 16, 16)), torch.tensor([1, 1, 2, 0, 0])))
    b.collate_fn = None
    assert m.head_scores(b, torch.device("cpu")) == pytest.approx(
        {"sla_aggregated_top1": 2 / 5, "sla_single_top1": 1 / 5, "sla_distilled_top1": 2 / 5}
    )
    m_ce = SLA(tiny_config(mode="ce"), INFO).eval()
    with torch.no_grad():
        m_ce.classifier.weight.zero_()
        m_ce.classifier.bias.copy_(torch.tensor([0.0, 0.0, 1.0]))
    assert m_ce.head_scores(b, torch.device("cpu")) == pytest.approx({"ce_top1": 1 / 5})


def test_bad_config_and_unlabelled_data_are_refused():
    with pytest.raises(ConfigError, match="method.mode"):
        tiny_config(mode="joint")
    with pytest.raises(ConfigError, match="train_labels"):
        SLA(tiny_config(), dataclasses.replace(INFO, num_classes=None))
    m = SLA(tiny_config(), INFO)
    with pytest.raises(ConfigError, match="data.train_labels=true"):
        m.pretext()(torch.zeros(1, 16, 16, dtype=torch.uint8))

"""The fine-tuning probe: it trains the backbone it is given (and only a copy of it), takes the documented steps
over reshuffled passes, and the probe table hands each row its backbone."""

import math

import pytest
import torch
from torch import nn

from ssl_core.data import DataBundle, LabeledSplit
from ssl_core.errors import ConfigError
from ssl_core.eval import (
    ProbeConfig,
    finetune_accuracy,
    finetune_curve_probes,
    linear_probe,
    probe_table,
    stratified_subset,
)
from ssl_core.testing.toy import ToyConfig, ToyMethod


class Projection(nn.Module):
    """A linear backbone to ``embed_dim`` features."""

    def __init__(self, dim: int, embed_dim: int) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.proj = nn.Linear(dim, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


def _hidden_classes(n: int, seed: int) -> LabeledSplit:
    """4 classes in 12 dimensions, told apart along coordinates 2 to 5 only."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(4).repeat(n // 4)
    x = torch.randn(n, 12, generator=g) * 0.3
    x[:, 2:6] += 3.0 * nn.functional.one_hot(y, 4)
    return LabeledSplit(list(x), y)


def test_finetuning_trains_the_backbone_and_leaves_the_original():
    torch.manual_seed(0)
    backbone = Projection(12, 4)
    with torch.no_grad():  # the backbone starts blind to the class directions: it reads coordinates 0, 1, 6, 7
        backbone.proj.weight.zero_()
        backbone.proj.weight[[0, 1, 2, 3], [0, 1, 6, 7]] = 1.0
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    train, test = _hidden_classes(200, 0), _hidden_classes(100, 1)
    frozen = linear_probe(backbone(torch.stack(train.inputs)).detach(), train.labels,
                          backbone(torch.stack(test.inputs)).detach(), test.labels).top1  # fmt: skip
    tuned = finetune_accuracy(backbone, train, test, 4, epochs=20, lr=1e-2)
    assert frozen < 0.45 and tuned > 0.9, (frozen, tuned)
    for k, v in backbone.state_dict().items():
        assert torch.equal(v, before[k]), k  # a copy was tuned
    again = finetune_accuracy(backbone, train, test, 4, epochs=20, lr=1e-2)
    assert again == tuned  # the seed fixes the head, the batches and the result


class Recorder(nn.Module):
    """A backbone that records the index (first feature) of every input it trains on."""

    seen: list[list[int]] = []  # a class attribute: shared by the deep copy the probe tunes

    def __init__(self) -> None:
        super().__init__()
        self.embed_dim = 3
        self.proj = nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            Recorder.seen.append(x[:, 0].long().tolist())
        return self.proj(x)


@pytest.mark.parametrize("n,epochs,batch_size,min_steps", [(50, 3.0, 8, 5), (10, 1.0, 4, 7)])
def test_finetuning_takes_the_documented_steps_over_reshuffled_passes(n, epochs, batch_size, min_steps):
    Recorder.seen = []
    data = LabeledSplit([torch.tensor([float(i), 1.0]) for i in range(n)], torch.arange(n) % 2)
    finetune_accuracy(Recorder(), data, data, 2, epochs=epochs, batch_size=batch_size, min_steps=min_steps)
    steps = max(min_steps, math.ceil(epochs * n / batch_size))
    assert len(Recorder.seen) == steps and all(len(b) == batch_size for b in Recorder.seen)
    order = [i for b in Recorder.seen for i in b]
    for start in range(0, len(order) - n + 1, n):  # each complete pass sees every input once
        assert sorted(order[start : start + n]) == list(range(n))
    assert order[:n] != list(range(n))  # shuffled


def test_finetuning_asks_for_the_width_of_an_unknown_backbone():
    data = _hidden_classes(8, 0)
    with pytest.raises(ConfigError, match="embed_dim"):
        finetune_accuracy(nn.Linear(12, 2), data, data, 4)
    assert 0 <= finetune_accuracy(nn.Linear(12, 2), data, data, 4, embed_dim=2, min_steps=1) <= 1


def test_curve_probes_tune_backbones_and_fit_features_without_one():
    train, test = _hidden_classes(400, 0), _hidden_classes(100, 1)
    probes = finetune_curve_probes(train, test, 4, [0.01, 0.5, 1.0], max_train=200, epochs=1.0, seed=3)
    assert list(probes) == ["finetune@1%", "finetune@50%", "finetune@100%"]
    embed = lambda x: x  # noqa: E731 - features without a network: the raw inputs
    assert probes["finetune@1%"]("raw_input", embed, "cpu", None) is None  # 4 inputs: too few to fit
    capped = stratified_subset(train, 200, 3)
    half = stratified_subset(capped, 100, 3)
    x, xt = torch.stack([half.inputs[i] for i in range(100)]), torch.stack(test.inputs)
    assert probes["finetune@50%"]("raw_input", embed, "cpu", None) == linear_probe(x, half.labels, xt, test.labels,
                                                                                    seed=3).top1  # fmt: skip
    backbone = Projection(12, 4)
    assert probes["finetune@100%"]("pretrained", None, "cpu", backbone) == finetune_accuracy(
        backbone, capped, test, 4, epochs=1.0, seed=3
    )
    with pytest.raises(ConfigError, match="fractions"):
        finetune_curve_probes(train, test, 4, [0.0, 1.0])


def test_probe_table_hands_each_row_its_backbone():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 8, generator=g), torch.arange(40) % 2
    handed = {}

    def record(name, embed, device, backbone):
        handed[name] = backbone
        return 0.5

    bundle = DataBundle(x, None, "toy", LabeledSplit(x[:30], y[:30]), LabeledSplit(x[30:], y[30:]))
    bundle.extra_probes = {"recorded": record}
    method, other = ToyMethod(ToyConfig()), ToyMethod(ToyConfig())
    config = ProbeConfig(linear=False)
    nets = {"pretrained": method.backbone, "random_init": other.backbone}
    table = probe_table(bundle, {"pretrained": method.embed, "random_init": other.embed}, config, backbones=nets)
    assert handed == {"pretrained": method.backbone, "random_init": other.backbone, "raw_input": None}
    assert all(row["recorded"] == 0.5 for row in table.values())
    net = nn.Linear(8, 4)
    handed.clear()
    probe_table(bundle, {"pretrained": method.embed, "plain": net}, config, backbones={"plain": net})
    assert handed == {"pretrained": None, "plain": net, "raw_input": None}  # as given: none for the method


def test_extra_baseline_rows_follow_the_raw_input():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 8, generator=g), torch.arange(40) % 2
    x[:, 0] += 8 * y  # the label lives in the first coordinate
    handed = {}

    def record(name, embed, device, backbone):
        handed[name] = (backbone, str(device))
        return 0.5

    first = lambda b: b[:, :1]  # noqa: E731  a baseline that keeps the informative coordinate
    last = lambda b: b[:, -1:]  # noqa: E731  and one that drops it
    bundle = DataBundle(x, None, "toy", LabeledSplit(x[:30], y[:30]), LabeledSplit(x[30:], y[30:]))
    bundle.extra_baselines = {"first": first, "last": last}
    bundle.extra_probes = {"recorded": record}
    method = ToyMethod(ToyConfig())
    table = probe_table(bundle, {"pretrained": method.embed}, ProbeConfig(linear=False, k=3, cache=False))
    assert list(table) == ["pretrained", "raw_input", "first", "last"]
    assert table["first"]["knn_top1"] >= 0.9 and table["last"]["knn_top1"] <= 0.7
    assert handed["first"] == (None, "cpu") and handed["last"] == (None, "cpu")
    bundle.extra_baselines = {"pretrained": first}
    with pytest.raises(ValueError, match="'pretrained'"):
        probe_table(bundle, {"pretrained": method.embed}, ProbeConfig(linear=False, k=3, cache=False))

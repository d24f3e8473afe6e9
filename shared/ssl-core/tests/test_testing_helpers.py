"""The test helpers that modality packages use: ``without_gradient`` and ``torch_threads``."""

import torch
from torch import nn

from ssl_core.testing import torch_threads, without_gradient


def test_without_gradient_names_unused_zero_and_nonfinite_parameters():
    net = nn.ModuleDict({"used": nn.Linear(3, 2), "unused": nn.Linear(3, 2), "zero": nn.Linear(3, 2)})
    net["frozen"] = nn.Linear(3, 2).requires_grad_(False)
    x = torch.randn(4, 3)
    (net["used"](x).sum() + 0 * net["zero"](x).sum()).backward()
    assert without_gradient(net) == ["unused.weight", "unused.bias", "zero.weight", "zero.bias"]
    assert without_gradient(net, nonzero=False) == ["unused.weight", "unused.bias"]  # zero gradients count
    net["used"].weight.grad[0, 0] = float("nan")
    assert without_gradient(net)[0] == "used.weight"


def test_torch_threads_restores_the_count():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before

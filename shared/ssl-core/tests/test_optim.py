import copy

import pytest
import torch
from torch import nn

from ssl_core.train import LARS, TrainConfig, build_optimizer, param_groups
from ssl_core.train.optim import _fused_ok, match_state_layout


def naive_lars_step(w, g, buf, lr, momentum, wd, eta, adapt):
    """The LARS update of You et al. (2017) as in Barlow Twins / lightly, written out."""
    if adapt:
        g = g + wd * w
        wn, gn = w.norm(), g.norm()
        if wn > 0 and gn > 0:
            g = g * (eta * wn / gn)
    buf = momentum * buf + g
    return w - lr * buf, buf


def test_lars_matches_reference_over_steps():
    torch.manual_seed(0)
    w = torch.randn(5, 3, dtype=torch.float64)
    b = torch.randn(3, dtype=torch.float64)
    pw, pb = nn.Parameter(w.clone()), nn.Parameter(b.clone())
    opt = LARS(
        [{"params": [pw]}, {"params": [pb], "lars_adapt": False, "weight_decay": 0.0}],
        lr=0.3,
        momentum=0.9,
        weight_decay=1e-2,
        eta=0.02,
    )
    bw, bb = torch.zeros_like(w), torch.zeros_like(b)
    for _ in range(4):
        gw, gb = torch.randn_like(w), torch.randn_like(b)
        pw.grad, pb.grad = gw.clone(), gb.clone()
        opt.step()
        w, bw = naive_lars_step(w, gw, bw, 0.3, 0.9, 1e-2, 0.02, adapt=True)
        b, bb = naive_lars_step(b, gb, bb, 0.3, 0.9, 0.0, 0.02, adapt=False)
        torch.testing.assert_close(pw.detach(), w)
        torch.testing.assert_close(pb.detach(), b)


def test_lars_zero_weights_fall_back_to_unit_trust():
    p = nn.Parameter(torch.zeros(3, 3))
    opt = LARS([p], lr=1.0, momentum=0.0, eta=0.001)
    p.grad = torch.ones(3, 3)
    opt.step()
    torch.testing.assert_close(p.detach(), -torch.ones(3, 3))


def test_param_groups_exclude_biases_and_norms():
    m = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    groups = param_groups(m)
    decay = {id(p) for p in groups[0]["params"]}
    assert decay == {id(m[0].weight), id(m[3].weight)}
    assert groups[1]["apply_weight_decay"] is False and groups[1]["weight_decay"] == 0.0
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(list(m.parameters()))


@pytest.mark.parametrize("name,cls", [("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD), ("lars", LARS)])
def test_build_optimizer(name, cls):
    opt = build_optimizer(nn.Linear(3, 2), TrainConfig(optimizer=name, lr=0.5, batch_size=512, lr_scale_batch=True))
    assert isinstance(opt, cls)
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0)  # 0.5 * 512 / 256


def test_adamw_is_fused_and_steps_as_the_default_adamw():
    """The trainer's AdamW runs torch's fused kernel on CPU tensors; its steps equal those of the default
    (multi-tensor) AdamW with the same groups, learning rate and weight decay."""
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(5, 4), nn.LayerNorm(4), nn.Linear(4, 3))
    b = copy.deepcopy(a)
    w0 = a[0].weight.detach().clone()
    cfg = TrainConfig(optimizer="adamw", lr=0.01, weight_decay=0.05)
    fused = build_optimizer(a, cfg)
    assert fused.defaults["fused"] is True
    ref = torch.optim.AdamW(param_groups(b), lr=0.01, weight_decay=0.05, foreach=False)
    x = torch.randn(16, 5)
    for _ in range(5):
        for model, opt in ((a, fused), (b, ref)):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(a[0].weight, w0, atol=1e-3)  # the steps moved the parameters


def test_adamw_falls_back_to_the_default_kernel_without_parameters_or_on_mixed_devices():
    assert _fused_ok([{"params": [nn.Parameter(torch.zeros(2))]}])
    assert not _fused_ok([{"params": []}])
    assert not _fused_ok([{"params": [nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2, device="meta"))]}])


def test_reloaded_moments_take_their_parameters_layout_so_fused_adamw_continues_exactly():
    """A checkpoint stores the moments of a channels-last weight contiguous; after ``match_state_layout``
    the fused AdamW continues as if never interrupted (without it, torch 2.9's fused kernel moves the weight
    up to 0.29 elsewhere)."""

    def train(reload: str) -> torch.Tensor:
        torch.manual_seed(0)
        p = nn.Parameter(torch.randn(8, 4, 3, 3).contiguous(memory_format=torch.channels_last))
        opt = torch.optim.AdamW([p], lr=0.1, fused=True)
        g = torch.Generator().manual_seed(1)
        for i in range(3):
            p.grad = torch.randn(8, 4, 3, 3, generator=g).contiguous(memory_format=torch.channels_last)
            opt.step()
            if i == 0 and reload != "none":
                sd = opt.state_dict()
                for st in sd["state"].values():  # as a safetensors round trip gives them back
                    st["exp_avg"], st["exp_avg_sq"] = st["exp_avg"].contiguous(), st["exp_avg_sq"].contiguous()
                opt.load_state_dict(sd)
                if reload == "matched":
                    match_state_layout(opt)
                    assert all(v.stride() == p.stride() for k, v in opt.state[p].items() if k != "step")
        return p.detach()

    straight = train("none")
    torch.testing.assert_close(train("matched"), straight, rtol=0, atol=0)

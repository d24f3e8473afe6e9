"""Point-cloud backbones: grouping against a naive FPS + brute-force kNN, the mini-PointNet's and the encoders'
permutation invariance, gradients, rebuild from the exported config, EdgeConv's factored product."""

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch

from ssl_core.errors import ConfigError
from ssl_core.testing import without_gradient
from ssl_pointcloud.info import PointInfo
from ssl_pointcloud.models import (
    MiniPointNet,
    PointTransformer,
    PointTransformerConfig,
    PointwiseConfig,
    PointwiseEncoder,
    build_point_transformer,
    build_pointwise,
    group_points,
)
from ssl_pointcloud.models.pointwise import EdgeConv
from ssl_pointcloud.models.transformer import backbone_spec

SMALL_PT = {"num_groups": 16, "group_size": 8, "width": 32, "depth": 2, "heads": 2, "pointnet_dims": (16, 32, 32)}
SMALL_PW = {"k": 8, "dims": (16, 16, 32), "width": 32}


def clouds(b=3, n=128, seed=0):
    return torch.rand(b, n, 3, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def naive_group(points: np.ndarray, num_groups: int, group_size: int):
    """FPS from point 0 (lowest index on ties) and brute-force kNN, one cloud at a time, in float64."""
    centres, groups, indices = [], [], []
    for cloud in points.astype(np.float64):
        chosen, dist = [0], np.full(len(cloud), np.inf)
        for _ in range(num_groups - 1):
            dist = np.minimum(dist, ((cloud - cloud[chosen[-1]]) ** 2).sum(-1))
            chosen.append(int(np.argmax(dist)))
        c = cloud[chosen]
        d = ((c[:, None] - cloud[None]) ** 2).sum(-1)  # (G, N)
        idx = np.argsort(d, axis=1, kind="stable")[:, :group_size]
        centres.append(c)
        groups.append(cloud[idx] - c[:, None])
        indices.append(idx)
    return np.stack(centres), np.stack(groups), np.stack(indices)


@pytest.mark.parametrize(("n", "g", "k"), [(128, 16, 8), (300, 32, 24), (64, 64, 64)])
def test_group_points_matches_naive_fps_and_knn(n, g, k):
    pts = clouds(2, n, seed=n)
    centres, groups, idx = group_points(pts, g, k)
    ref_c, ref_g, ref_idx = naive_group(pts.numpy(), g, k)
    assert centres.shape == (2, g, 3) and groups.shape == (2, g, k, 3) and idx.shape == (2, g, k)
    np.testing.assert_array_equal(idx.numpy(), ref_idx)
    np.testing.assert_allclose(centres.numpy(), ref_c, atol=1e-6)
    np.testing.assert_allclose(groups.numpy(), ref_g, atol=1e-6)
    # each group's first point is its centre (distance 0)
    assert groups[:, :, 0].abs().max() == 0


def test_group_points_gradient_reaches_points():
    pts = clouds(2, 64).requires_grad_(True)
    centres, groups, idx = group_points(pts, 8, 4)
    w = torch.randn_like(groups)
    (groups * w).sum().backward()
    # reference: the same gather written by hand
    ref_pts = pts.detach().clone().requires_grad_(True)
    cen_idx = idx[:, :, 0]  # the centre is its own nearest point
    b = torch.arange(2)[:, None]
    ref = ref_pts[b[..., None], idx] - ref_pts[b, cen_idx][:, :, None]
    (ref * w).sum().backward()
    torch.testing.assert_close(pts.grad, ref_pts.grad)


@pytest.mark.parametrize(("g", "k"), [(200, 8), (8, 200)])
def test_group_points_too_few_points_is_a_config_error(g, k):
    with pytest.raises(ConfigError, match=r"128 points.*num_points.*num_groups / backbone.group_size"):
        group_points(clouds(1, 128), g, k)


def test_backbones_reject_too_few_points():
    with pytest.raises(ConfigError, match="fewer than k=8"):
        PointwiseEncoder(PointwiseConfig(**SMALL_PW)).point_features(clouds(1, 4))
    with pytest.raises(ConfigError, match="cannot make 16 groups"):
        PointTransformer(PointTransformerConfig(**SMALL_PT))(clouds(1, 10))


@pytest.mark.parametrize("train", [True, False])
def test_mini_pointnet_is_invariant_to_the_order_within_a_group(train):
    torch.manual_seed(0)
    net = MiniPointNet(24, (8, 16, 16)).train(train)
    groups = torch.randn(2, 5, 7, 3)
    perm = torch.randperm(7)
    out = net(groups)
    assert out.shape == (2, 5, 24)
    torch.testing.assert_close(net(groups[:, :, perm]), out, atol=1e-5, rtol=1e-5)


def naive_mini_pointnet(net: MiniPointNet, groups: torch.Tensor) -> torch.Tensor:
    """Point-MAE's encoder as written there: concatenate the pooled vector to every point, then the second MLP."""
    f = net._mlp(net.first, groups)
    f = torch.cat([f.max(dim=2, keepdim=True).values.expand_as(f), f], dim=-1)
    return net._mlp(net.second, f).max(dim=2).values


@pytest.mark.parametrize("train", [True, False])
def test_mini_pointnet_factored_product_matches_concat_then_linear(train):
    torch.manual_seed(0)
    net = MiniPointNet(24, (8, 16, 16)).double().train(train)
    ref_net = copy.deepcopy(net)
    groups = torch.randn(2, 5, 7, 3, dtype=torch.float64)
    ga, gb = groups.clone().requires_grad_(True), groups.clone().requires_grad_(True)
    out, ref = net(ga), naive_mini_pointnet(ref_net, gb)
    torch.testing.assert_close(out, ref)
    w = torch.randn_like(out)
    (out * w).sum().backward()
    (ref * w).sum().backward()
    torch.testing.assert_close(ga.grad, gb.grad)
    for (n, p), q in zip(net.named_parameters(), ref_net.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=n)


def backbones():
    return {
        "transformer": lambda: PointTransformer(PointTransformerConfig(**SMALL_PT)),
        "pointwise": lambda: PointwiseEncoder(PointwiseConfig(**SMALL_PW)),
    }


@pytest.mark.parametrize("name", list(backbones()))
def test_backbone_shapes(name):
    torch.manual_seed(0)
    net = backbones()[name]().eval()
    pts = clouds(3, 128)
    emb = net(pts)
    assert emb.shape == (3, net.embed_dim) and net.embed_dim == 2 * net.width
    where, feats = net.tokens(pts)
    tokens = SMALL_PT["num_groups"] if name == "transformer" else 128
    assert where.shape == (3, tokens, 3) and feats.shape == (3, tokens, net.width)
    torch.testing.assert_close(emb, torch.cat([feats.max(1).values, feats.mean(1)], -1))
    if name == "pointwise":
        assert net.point_features(pts).shape == (3, 128, net.width)


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("name", list(backbones()))
def test_backbones_are_invariant_to_the_order_of_points(name, train):
    """PointwiseEncoder: any permutation. PointTransformer: FPS starts at point 0, so its centres (and therefore
    its groups) depend on which point comes first; any permutation that keeps point 0 in place leaves them, and
    the embedding, unchanged (a full permutation changes the centres: the embedding is then only close)."""
    torch.manual_seed(0)
    net = backbones()[name]().train(train)
    pts = clouds(2, 128)
    perm = torch.randperm(128)
    if name == "transformer":
        perm = torch.cat([torch.tensor([0]), 1 + torch.randperm(127)])
    torch.testing.assert_close(net(pts[:, perm]), net(pts), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", list(backbones()))
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    net = backbones()[name]().train()
    pts = clouds(3, 128)
    (net(pts) * torch.randn(3, net.embed_dim)).sum().backward()
    missing = without_gradient(net)
    assert not missing, f"no gradient for {missing}"


@pytest.mark.parametrize(
    ("name", "build", "config"),
    [
        ("point_transformer", build_point_transformer, PointTransformerConfig(**SMALL_PT, drop_path=0.1)),
        ("pointwise", build_pointwise, PointwiseConfig(**SMALL_PW)),
    ],
)
def test_build_round_trip_from_the_exported_config(name, build, config):
    torch.manual_seed(0)
    net = build(dataclasses.asdict(config)).eval()
    spec = backbone_spec(net, PointInfo(num_points=128))
    assert spec.name == name and spec.embed_dim == net.embed_dim and spec.input["num_points"] == 128
    # the export writes the config as JSON (tuples become lists)
    again = build(json.loads(json.dumps(spec.config)))
    assert again.config == config
    again.load_state_dict(net.state_dict())
    pts = clouds(2, 128)
    torch.testing.assert_close(again.eval()(pts), net(pts))


def naive_edge_conv(conv: EdgeConv, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """DGCNN's edge conv written out: gather neighbours, concatenate ``[x_i, x_j - x_i]``, linear, BN, act, max."""
    b, n, k = idx.shape
    xj = x[torch.arange(b)[:, None, None], idx]  # (B, N, k, C)
    xi = x[:, :, None].expand_as(xj)
    h = conv.linear(torch.cat([xi, xj - xi], dim=-1))
    h = torch.nn.functional.leaky_relu(conv.norm(h.reshape(-1, h.shape[-1])), 0.2).reshape(b, n, k, -1)
    return h.max(dim=2).values


@pytest.mark.parametrize("train", [True, False])
def test_edge_conv_factored_product_matches_concat_then_linear(train):
    torch.manual_seed(0)
    conv = EdgeConv(5, 12).train(train)
    with torch.no_grad():  # non-trivial running statistics for eval mode
        conv.norm.running_mean.normal_()
        conv.norm.running_var.uniform_(0.5, 2.0)
    ref_conv = copy.deepcopy(conv)
    x = torch.randn(2, 20, 5, dtype=torch.float64)
    conv, ref_conv = conv.double(), ref_conv.double()
    idx = torch.randint(0, 20, (2, 20, 6))
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out, ref = conv(xa, idx), naive_edge_conv(ref_conv, xb, idx)
    torch.testing.assert_close(out, ref)
    w = torch.randn_like(out)
    (out * w).sum().backward()
    (ref * w).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad)
    for (n, p), q in zip(conv.named_parameters(), ref_conv.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=n)
    if train:
        torch.testing.assert_close(conv.norm.running_mean, ref_conv.norm.running_mean)

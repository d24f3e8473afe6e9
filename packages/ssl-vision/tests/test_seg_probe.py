"""The per-pixel linear segmentation probe (``seg_miou``): the mIoU against a naive per-class loop and scikit-learn,
the pixel sampling against upsampling, perfect and random features, and a backbone that is only read."""

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import jaccard_score

from ssl_vision.models import ResNetConfig, ViTConfig
from ssl_vision.models.resnet import ResNet
from ssl_vision.models.vit import ViT
from ssl_vision.probes import dense_features, linear_segmentation_miou, mean_iou, scene_segmentation_probe
from ssl_vision.probes.segmentation import raw_patch_features, sample_pixel_features


def naive_miou(pred, target, num_classes, ignore=255):
    ious = []
    for c in range(num_classes):
        valid = target != ignore
        p, t = (pred == c) & valid, (target == c) & valid
        union = (p | t).sum().item()
        if union:
            ious.append((p & t).sum().item() / union)
    return sum(ious) / len(ious)


def blocky(n, grid=4, patch=7, classes=5, seed=0):
    """Labels constant on each patch of a ``grid`` x ``grid`` patch grid, and their one-hot on that grid."""
    g = torch.Generator().manual_seed(seed)
    cells = torch.randint(0, classes, (n, grid, grid), generator=g)
    labels = cells.repeat_interleave(patch, 1).repeat_interleave(patch, 2)
    return F.one_hot(cells, classes).permute(0, 3, 1, 2).float(), labels


def test_mean_iou_matches_naive_loop_and_sklearn():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 6, (3, 10, 10), generator=g)
    pred = torch.where(torch.rand(3, 10, 10, generator=g) < 0.6, target, torch.randint(0, 7, (3, 10, 10), generator=g))
    target[0, :2] = 255  # ignored pixels
    got = mean_iou(pred, target, num_classes=8)
    assert got == pytest.approx(naive_miou(pred, target, 8), abs=1e-12)
    keep = target != 255
    present = sorted(set(pred[keep].tolist()) | set(target[keep].tolist()))  # class 7 is in neither: left out
    ref = jaccard_score(target[keep].numpy(), pred[keep].numpy(), labels=present, average="macro")
    assert got == pytest.approx(ref, abs=1e-12)
    assert mean_iou(target, target, 8) == 1.0


def test_pixel_sampling_is_bilinear_upsampling():
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(2, 5, 4, 3, generator=g)
    up = F.interpolate(feats, size=(28, 21), mode="bilinear", align_corners=False)  # (2, 5, 28, 21)
    rows, cols = torch.randint(0, 28, (2, 30), generator=g), torch.randint(0, 21, (2, 30), generator=g)
    got = sample_pixel_features(feats, rows, cols, (28, 21))  # (2, 30, 5)
    want = torch.stack([up[i, :, rows[i], cols[i]].T for i in range(2)])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_perfect_features_score_one_and_random_features_low():
    onehot, labels = blocky(40)
    test_onehot, test_labels = blocky(20, seed=1)
    # one-hot features at full resolution: upsampling is the identity, the probe must be exact
    full = F.one_hot(labels, 5).permute(0, 3, 1, 2).float()
    full_test = F.one_hot(test_labels, 5).permute(0, 3, 1, 2).float()
    assert linear_segmentation_miou(full, labels, full_test, test_labels, num_classes=5) == pytest.approx(1.0)
    # one-hot on the patch grid: only the blurred patch corners can be wrong
    assert linear_segmentation_miou(onehot, labels, test_onehot, test_labels, num_classes=5) > 0.85
    noise, noise_test = torch.randn(40, 16, 4, 4), torch.randn(20, 16, 4, 4)
    assert linear_segmentation_miou(noise, labels, noise_test, test_labels, num_classes=5) < 0.3


def test_probe_is_deterministic():
    onehot, labels = blocky(20)
    feats = onehot + 0.5 * torch.randn(onehot.shape, generator=torch.Generator().manual_seed(2))
    a = linear_segmentation_miou(feats, labels, feats, labels, num_classes=5, seed=3)
    b = linear_segmentation_miou(feats, labels, feats, labels, num_classes=5, seed=3)
    assert a == b


def test_dense_features_of_vit_resnet_and_others():
    vit = ViT(ViTConfig(depth=1, patch_size=7, image_size=28, in_channels=1)).eval()
    x = torch.randn(2, 1, 28, 28)
    f = dense_features(vit, x)
    assert f.shape == (2, 192, 4, 4)
    tokens = vit.forward_features(x)[:, 1:]  # (2, 16, 192), row-major patches
    torch.testing.assert_close(f[:, :, 1, 2], tokens[:, 1 * 4 + 2])
    resnet = ResNet(ResNetConfig(width=8, in_channels=1)).eval()
    assert dense_features(resnet, x).shape[:2] == (2, resnet.embed_dim)
    assert dense_features(torch.nn.Linear(3, 3), x) is None
    assert raw_patch_features(x, 7).shape == (2, 49, 4, 4)
    torch.testing.assert_close(raw_patch_features(x, 7)[0, :, 1, 2], x[0, 0, 7:14, 14:21].reshape(-1))


def test_probe_reads_the_backbone_and_trains_only_its_own_classifier():
    g = torch.Generator().manual_seed(0)
    _, labels = blocky(12, grid=2)
    images = labels[:, None].float() / 4 + 0.1 * torch.randn(12, 1, 14, 14, generator=g)
    train, test = (images[:8], labels[:8]), (images[8:], labels[8:])
    probe = scene_segmentation_probe(train, test, num_classes=5, steps=10)
    vit = ViT(ViTConfig(depth=1, patch_size=7, image_size=14, in_channels=1)).train()
    before = {k: v.clone() for k, v in vit.state_dict().items()}
    score = probe("pretrained", None, "cpu", vit)
    assert 0.0 <= score <= 1.0
    assert vit.training  # mode restored
    assert all(p.grad is None for p in vit.parameters())
    assert all(torch.equal(before[k], v) for k, v in vit.state_dict().items())
    assert all(p.requires_grad for p in vit.parameters())
    assert 0.0 <= probe("raw_input", None, "cpu", None) <= 1.0
    assert probe("hog", None, "cpu", None) is None  # another baseline row: not applicable
    assert probe("pretrained", None, "cpu", torch.nn.Linear(3, 3)) is None  # no feature map

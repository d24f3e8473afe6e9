"""SLidR: the superpixel loss against a naive reference, gradients (student yes, teacher no), a falling loss on a
fixed batch, the batch's superpixel offsets, the teacher's export round trip, the segmentation probe's mIoU."""

import json

import pytest
import torch
import torch.nn.functional as F

from ssl_core.errors import DataError
from ssl_core.testing import fit_fixed_batch, pretext_batch
from ssl_pointcloud.info import PointInfo
from ssl_pointcloud.methods.slidr import SLidR, SLidRConfig
from ssl_pointcloud.models.pointwise import PointwiseConfig
from ssl_pointcloud.scenes import SceneConfig, SegmentationProbe, load_scenes, segmentation_miou
from ssl_pointcloud.teacher import DenseTeacher, TeacherConfig, default_teacher, load_teacher
from ssl_vision.models.resnet import ResNet, ResNetConfig

SMALL = SceneConfig(num_scenes=4, num_points=128, image_size=32, n_segments=16)
BACKBONE = PointwiseConfig(k=8, dims=(16, 16), width=32)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return load_scenes(SMALL, "train", tmp_path_factory.mktemp("scenes"))


def tiny_teacher():
    torch.manual_seed(0)
    net = ResNet(ResNetConfig(layers=[1, 1], width=8, in_channels=3))
    return DenseTeacher(net, [0.5, 0.5, 0.5], [0.25, 0.25, 0.25])


def make(**kw):
    torch.manual_seed(0)
    return SLidR(SLidRConfig(backbone=BACKBONE, proj_dim=16, **kw), PointInfo(128), teacher=tiny_teacher())


def batch_of(method, data):
    torch.manual_seed(0)
    return pretext_batch(method, [data[i] for i in range(len(data))])


def naive_loss(k, k_regions, q, q_regions, num_regions, tau):
    k, q = F.normalize(k, dim=1), F.normalize(q, dim=1)
    keys, queries = {}, {}
    for r in range(num_regions):
        if (k_regions == r).any() and (q_regions == r).any():
            keys[r] = k[k_regions == r].mean(0)
            queries[r] = q[q_regions == r].mean(0)
    regions = sorted(keys)
    total = 0.0
    for r in regions:
        logits = torch.stack([keys[r] @ queries[s] / tau for s in regions])
        total = total - torch.log_softmax(logits, 0)[regions.index(r)]
    return total / len(regions)


def test_batch_offsets_superpixels_per_scene(data):
    method = make()
    batch = batch_of(method, data)
    b, per = len(data), batch["num_regions"] // len(data)
    assert batch["points"].shape == (b, 128, 3) and batch["image"].shape == (b, 3, 32, 32)
    for i in range(b):
        sp = batch["superpixels"][i]
        assert sp.min() >= i * per and sp.max() < (i + 1) * per
        psp, pix = batch["point_superpixel"][i], data[i]["pixel"]
        vis = pix >= 0
        assert torch.equal(psp[vis], sp.reshape(-1)[pix[vis]]) and (psp[~vis] == -1).all()
    # the augmented clouds are rotations about z and scalings of the originals
    radius = batch["points"].norm(dim=2).max(1).values
    assert ((radius > 0.89) & (radius < 1.11)).all()
    z = torch.stack([data[i]["points"][:, 2] for i in range(b)])
    ratio = batch["points"][..., 2] / z
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-4)


def test_loss_matches_a_naive_reference(data):
    method = make()
    batch = batch_of(method, data)
    loss = method(batch).loss
    b, n = batch["points"].shape[:2]
    k = method.point_head(method.backbone.point_features(batch["points"])).reshape(b * n, -1)
    q = method.image_head(method.teacher(batch["image"])).permute(0, 2, 3, 1).reshape(-1, 16)
    ref = naive_loss(
        k,
        batch["point_superpixel"].reshape(-1),
        q,
        batch["superpixels"].reshape(-1),
        batch["num_regions"],
        method.config.temperature,
    )
    torch.testing.assert_close(loss, ref, rtol=1e-4, atol=1e-4)


def test_gradients_reach_the_student_and_not_the_teacher(data):
    method = make()
    method(batch_of(method, data)).loss.backward()
    student = [(n, p) for n, p in method.named_parameters() if not n.startswith("teacher.")]
    assert student and all(p.grad is not None and p.grad.abs().sum() > 0 for _, p in student), [
        n for n, p in student if p.grad is None or p.grad.abs().sum() == 0
    ]
    teacher = list(method.teacher.parameters())
    assert teacher and all(not p.requires_grad and p.grad is None for p in teacher)
    method.train()
    assert not method.teacher.net.training  # frozen batch-norm statistics


def test_loss_falls_on_a_fixed_batch(data):
    method = make()
    batch = batch_of(method, data)
    losses = fit_fixed_batch(method, batch, steps=25, lr=3e-3)
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses


def test_embed_and_backbone_spec(data):
    method = make()
    x = torch.stack([data[i]["points"] for i in range(2)])
    assert method.embed(x).shape == (2, 64)
    spec = method.backbone_spec()
    assert spec.name == "pointwise" and spec.embed_dim == 64 and spec.input["num_points"] == 128
    json.dumps(spec.config)


def test_plain_clouds_are_refused_with_a_fix():
    with pytest.raises(DataError, match="data.path=scenes"):
        make().pretext()(torch.zeros(128, 3))


def test_default_teacher_is_trained_once_and_loads_as_an_export(tmp_path):
    cfg = TeacherConfig(layers=[1], width=4, steps=2, batch_size=4, num_images=4)
    path = default_teacher(cfg, str(tmp_path))
    assert (path / "backbone.safetensors").is_file() and (path / "config.json").is_file()
    stamp = (path / "backbone.safetensors").stat().st_mtime_ns
    assert default_teacher(cfg, str(tmp_path)) == path
    assert (path / "backbone.safetensors").stat().st_mtime_ns == stamp  # reused, not trained again
    teacher = load_teacher(path)
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    assert teacher(images).shape == (2, teacher.dim, 64, 64) and teacher.dim == 4
    method = SLidR(SLidRConfig(backbone=BACKBONE, teacher=str(path)), PointInfo(128))
    assert not any(p.requires_grad for p in method.teacher.parameters())


def naive_miou(pred, target, num_classes):
    ious = []
    for c in range(num_classes):
        inter = sum(1 for p, t in zip(pred.tolist(), target.tolist(), strict=True) if p == c and t == c)
        union = sum(1 for p, t in zip(pred.tolist(), target.tolist(), strict=True) if p == c or t == c)
        if union:
            ious.append(inter / union)
    return sum(ious) / len(ious)


def test_miou_matches_a_naive_confusion_count():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (500,), generator=g)
    pred = torch.where(torch.rand(500, generator=g) < 0.6, target, torch.randint(0, 6, (500,), generator=g))
    assert segmentation_miou(pred, target, 6) == pytest.approx(naive_miou(pred, target, 6))
    assert segmentation_miou(target, target, 6) == 1.0


def test_segmentation_probe_scores_point_features(data):
    method = make()
    probe = SegmentationProbe(data, data, points_per_scene=64)
    score = probe("pretrained", method.embed, "cpu", method.backbone)
    assert 0.0 <= score <= 1.0
    assert method.backbone.training  # the probe restores the mode it found
    # a perfect feature (the one-hot label of each point) gives mIoU 1
    clouds = torch.from_numpy(data.arrays["points"])
    labels = torch.from_numpy(data.arrays["labels"].astype("int64"))

    class Oracle(torch.nn.Module):
        def point_features(self, pts):
            idx = [int(((clouds - p).abs().sum((1, 2)) == 0).nonzero()[0]) for p in pts]
            return F.one_hot(labels[idx], 6).float()

    assert probe("pretrained", None, "cpu", Oracle()) == 1.0


def test_a_vit_teacher_gives_upsampled_patch_tokens():
    from ssl_vision.models.vit import ViT, ViTConfig

    torch.manual_seed(0)
    vit = ViT(ViTConfig(depth=1, patch_size=8, image_size=32, in_channels=3))
    teacher = DenseTeacher(vit, [0.5] * 3, [0.25] * 3)
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    out = teacher(images)
    assert out.shape == (2, 192, 32, 32) and teacher.dim == 192
    x = (images.float() / 255 - 0.5) / 0.25
    tokens = vit.forward_features(x)[:, 1:]  # (2, 16, 192), patches in row-major order
    maps = teacher._maps(x)  # (2, 192, 4, 4)
    torch.testing.assert_close(maps[:, :, 1, 2], tokens[:, 1 * 4 + 2])
    torch.testing.assert_close(out, torch.nn.functional.interpolate(maps, size=(32, 32), mode="bilinear"))

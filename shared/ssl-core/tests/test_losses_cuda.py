"""Every loss, mask and teacher runs on CUDA tensors and agrees with the CPU (skipped without a GPU)."""

import pytest
import torch

import ssl_core.losses as L
from ssl_core.masking import mlm_mask, random_mask, time_mask, tube_mask
from ssl_core.teacher import EMATeacher, FeatureQueue

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _cases():
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    pair = (r(8, 5), r(8, 5))
    regions = torch.randint(-1, 4, (30,), generator=g)
    return {
        "nt_xent": (L.nt_xent, pair),
        "info_nce_queue": (lambda q, k, m: L.info_nce(q, k, m), (*pair, r(12, 5))),
        "dcl": (L.dcl, pair),
        "dclw": (L.dclw, pair),
        "supcon": (lambda z: L.supcon(z, torch.tensor([0, 1, 0, 1, 2, 2, 0, 1], device=z.device)), (r(8, 2, 5),)),
        "clip_loss": (L.clip_loss, pair),
        "mil_nce": (L.mil_nce, (r(8, 5), r(8, 3, 5))),
        "triplet": (L.triplet, (r(8, 5), r(8, 5), r(8, 5))),
        "taco": (L.taco, (*pair, r(5, 5))),
        "region": (
            lambda a, b: L.region_contrastive(a, regions.to(a.device), b, regions.to(a.device), 4),
            (r(30, 5), r(30, 5)),
        ),
        "negative_cosine": (L.negative_cosine, pair),
        "barlow_twins": (L.barlow_twins, pair),
        "vicreg": (L.vicreg, pair),
        "koleo": (L.koleo, (r(8, 5),)),
        "dino": (lambda s, t, c: L.dino_loss(s, t, c), (r(4, 8, 6), r(2, 8, 6), r(1, 6))),
        "ibot": (lambda s, t, c: L.ibot_patch_loss(s, t, s[..., 0] > 0, c), (r(4, 5, 6), r(4, 5, 6), r(1, 6))),
        "swav": (lambda a, b, c: L.swav_loss([a, b], [c]), (r(8, 4), r(8, 4), r(8, 4))),
        "masked_mse": (lambda p, t: L.masked_mse(p, t, p[..., 0] > 0, norm_pix=True), (r(4, 6, 3), r(4, 6, 3))),
        "masked_l1": (lambda p, t: L.masked_l1(p, t, p[..., 0] > 0), (r(4, 6, 3), r(4, 6, 3))),
        "masked_ce": (lambda z: L.masked_cross_entropy(z, z.argmin(-1), z[..., 0] > 0, 0.1), (r(4, 6, 3),)),
        "sce": (L.sce, pair),
        "kd": (L.soft_target_distillation, pair),
        "sla": (L.sla_self_distillation, (r(4, 3), r(4, 2, 6))),
    }


@pytest.mark.parametrize("name", list(_cases()))
def test_loss_on_cuda_matches_cpu(name):
    fn, inputs = _cases()[name]
    cpu = [x.clone().requires_grad_(True) for x in inputs]
    gpu = [x.cuda().requires_grad_(True) for x in inputs]
    out_cpu, out_gpu = fn(*cpu), fn(*gpu)
    torch.testing.assert_close(out_gpu.cpu(), out_cpu)
    for a, b in zip(
        torch.autograd.grad(out_gpu, gpu, allow_unused=True),
        torch.autograd.grad(out_cpu, cpu, allow_unused=True),
        strict=True,
    ):
        if b is not None:
            torch.testing.assert_close(a.cpu(), b)


def test_stateful_modules_masks_and_multitask_on_cuda():
    dev = torch.device("cuda")
    student = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3)).to(dev)
    teacher = EMATeacher(student)
    student(torch.randn(5, 4, device=dev)).sum().backward()
    teacher.update(student, 0.9)
    queue = FeatureQueue(6, 3).to(dev)
    queue.enqueue(torch.randn(4, 3, device=dev))
    assert queue.features.device.type == "cuda"
    dino = L.DINOLoss(6).to(dev)
    dino(torch.randn(3, 4, 6, device=dev), torch.randn(2, 4, 6, device=dev))
    assert dino.center.center.device.type == "cuda"
    assert random_mask(2, 8, device=dev).mask.device.type == "cuda"
    assert tube_mask(2, 2, 4, device=dev).ids_keep.device.type == "cuda"
    ids = torch.randint(5, 30, (2, 10), device=dev)
    inputs, labels = mlm_mask(ids, 30, 4, special_token_ids=(0, 1), generator=torch.Generator().manual_seed(0))
    assert inputs.device.type == "cuda" and labels.device.type == "cuda"
    assert time_mask(2, 50, lengths=torch.tensor([50, 30], device=dev)).shape == (2, 50)
    backbone = torch.nn.Linear(3, 4).to(dev)
    h = backbone(torch.randn(6, 3, device=dev))
    losses = {"a": h.pow(2).mean(), "b": (h - 1).pow(2).mean()}
    total, weights = L.MultiTaskLoss(["a", "b"], weighting="mgda")(losses, backbone.parameters())
    assert total.device.type == "cuda" and abs(sum(weights.values()) - 1) < 1e-6

"""EMA teacher, feature queue and DINO centre against step-by-step references."""

import copy

import pytest
import torch
from torch import nn

from ssl_core.errors import ConfigError
from ssl_core.teacher import Center, EMATeacher, FeatureQueue


def _student():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))


def test_ema_update_follows_the_formula_with_per_step_momentum():
    student = _student()
    teacher = EMATeacher(student)
    reference = {k: v.clone() for k, v in student.state_dict().items()}
    assert all(not p.requires_grad for p in teacher.parameters())
    opt = torch.optim.SGD(student.parameters(), lr=0.1)
    for step, m in enumerate([0.9, 0.99, 0.5]):  # the Trainer's values["ema_momentum"] of each step
        student.train()
        loss = student(torch.randn(8, 4)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        teacher.update(student, m)
        for name, p in student.named_parameters():
            reference[name] = m * reference[name] + (1 - m) * p.detach()
        for name, b in student.named_buffers():  # BN running statistics are followed
            reference[name] = b.clone()
        for name, value in teacher.module.state_dict().items():
            torch.testing.assert_close(value, reference[name], msg=f"step {step}: {name}")
    assert int(teacher.module[1].num_batches_tracked) == 3


def test_ema_edges_and_checkpoint_roundtrip():
    student = _student()
    teacher = EMATeacher(student)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    before = copy.deepcopy(teacher.state_dict())
    teacher.update(student, 1.0)  # momentum 1 keeps the teacher's weights
    for name, p in teacher.module.named_parameters():
        torch.testing.assert_close(p, before[f"module.{name}"])
    teacher.update(student, 0.0)  # momentum 0 copies the student
    for (_, p), (_, q) in zip(teacher.module.named_parameters(), student.named_parameters(), strict=True):
        torch.testing.assert_close(p, q)
    fresh = EMATeacher(_student())
    fresh.load_state_dict(teacher.state_dict())
    x = torch.randn(5, 4)
    teacher.eval(), fresh.eval()
    torch.testing.assert_close(fresh(x), teacher(x))


def test_ema_errors():
    teacher = EMATeacher(_student())
    with pytest.raises(ConfigError, match="momentum"):
        teacher.update(_student(), 1.5)
    with pytest.raises(ConfigError, match="unwrapped"):
        teacher.update(nn.Sequential(nn.Linear(4, 6)), 0.9)


def test_queue_is_first_in_first_out_like_a_list():
    queue = FeatureQueue(size=7, dim=2)
    reference: list[torch.Tensor] = []
    g = torch.Generator().manual_seed(0)
    assert len(queue) == 0 and queue.features.shape == (0, 2)
    for n in [3, 2, 4, 1, 9, 5]:  # fills, wraps around, and once gets more rows than it holds
        batch = torch.randn(n, 2, generator=g)
        queue.enqueue(batch)
        reference = (reference + list(batch))[-7:]
        torch.testing.assert_close(queue.features, torch.stack(reference))
    assert queue.is_full and len(queue) == 7
    restored = FeatureQueue(size=7, dim=2)
    restored.load_state_dict(queue.state_dict())  # the queue is checkpointed with the method
    torch.testing.assert_close(restored.features, queue.features)


def test_queue_errors():
    with pytest.raises(ConfigError):
        FeatureQueue(0, 4)
    with pytest.raises(ValueError, match="dim 4"):
        FeatureQueue(5, 4).enqueue(torch.randn(2, 3))


def test_center_is_an_ema_of_batch_means():
    center = Center(dim=3, momentum=0.8)
    expected = torch.zeros(1, 3)
    for _ in range(3):
        x = torch.randn(2, 5, 3)  # views x batch x dim: every position counts as a sample
        center.update(x)
        expected = 0.8 * expected + 0.2 * x.reshape(-1, 3).mean(0, keepdim=True)
        torch.testing.assert_close(center.center, expected)
    with pytest.raises(ConfigError):
        Center(3, momentum=2.0)


def test_ema_teacher_of_several_parts_registers_each_part_once():
    """BYOL's and DINO's teacher follows several parts of the method, passed as a mapping at each update."""

    class TwoParts(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.backbone, self.head = _student(), nn.Linear(3, 2)
            self.teacher = EMATeacher({"backbone": self.backbone, "head": self.head})

        def parts(self) -> dict[str, nn.Module]:
            return {"backbone": self.backbone, "head": self.head}

    m = TwoParts()
    keys = list(m.state_dict())
    assert not any(k.startswith(("parts", "student")) for k in keys)  # the student is saved once, as itself
    assert {k.removeprefix("teacher.module.") for k in keys if k.startswith("teacher.")} == {
        k for k in keys if not k.startswith("teacher.")
    }
    with torch.no_grad():
        for p in [*m.backbone.parameters(), *m.head.parameters()]:
            p.add_(1.0)
    before = {k: v.clone() for k, v in m.teacher.module.state_dict().items()}
    m.teacher.update(m.parts(), 0.75)
    live = nn.ModuleDict(m.parts()).state_dict()
    for name, p in m.teacher.module.named_parameters():
        torch.testing.assert_close(p, 0.75 * before[name] + 0.25 * live[name], msg=name)
    for name, b in m.teacher.module.named_buffers():
        torch.testing.assert_close(b, live[name], msg=name)
    with pytest.raises(ConfigError, match="mapping of parts"):
        m.teacher.update({"backbone": m.backbone}, 0.5)  # a part missing

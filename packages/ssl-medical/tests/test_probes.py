"""The few-shot segmentation probe: structure grouping, Dice against a naive reference, the task's hemispheres, a
perfect segmenter scores 1, fine-tuning beats no fine-tuning, None where it does not apply. Tiny volumes."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from ssl_core.errors import DataError
from ssl_medical.models.monai_nets import MonaiBackbone, unet_kwargs
from ssl_medical.probes.segmentation import (
    STRUCTURES,
    FewShotSegConfig,
    atlas_task,
    dice_score,
    fewshot_dice_probe,
    finetune_dice,
    structure_map,
    structure_of,
)

TINY = FewShotSegConfig(shots=4, test_per_class=4, patch=16, steps=80, batch_size=4, lr=1e-2)
NAMES = {1: "Precentral_L", 2: "Precentral_R", 3: "Insula_L", 4: "Insula_R"}  # frontal (1), limbic (2)


def _volume(seed: int = 0):
    """64 x 24 x 24: background 0 (as the zero padding of border patches) and AAL regions 1-4 as 6 random balls each
    (left ids in the left half of axis 0, right ids in the right half): frontal (1, 2) at 0.5, limbic (3, 4) at 0.9;
    noise 0.02. Intensity, not position, tells the classes apart, so what is learnt on the left transfers to the
    right (for a network that sees absolute intensity: the test UNet uses batch norm, as instance norm hides it)."""
    rng = np.random.default_rng(seed)
    shape = (64, 24, 24)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1)
    labels = np.zeros(shape, np.int16)
    for rid in (1, 2, 3, 4):
        lo = 2 if rid % 2 else 34
        for _ in range(6):
            centre = (rng.integers(lo, lo + 28), rng.integers(2, 22), rng.integers(2, 22))
            labels[(((grid - centre) ** 2).sum(-1) <= rng.integers(9, 17)) & (labels == 0)] = rid
    image = np.where(np.isin(labels, (1, 2)), 0.5, np.where(labels > 0, 0.9, 0.0)).astype(np.float32)
    image += rng.normal(0, 0.02, shape).astype(np.float32)
    return SimpleNamespace(image=image, labels=labels, names=NAMES)


class _Oracle(nn.Module):
    """Logits that are the exact classes of ``_volume``'s intensities (background / frontal / limbic)."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls = (x[:, 0] > 0.25).long() + (x[:, 0] > 0.7).long()
        return 100.0 * nn.functional.one_hot(cls, 3).permute(0, 4, 1, 2, 3).float() + 0 * self.unused


def _unet() -> MonaiBackbone:
    torch.manual_seed(0)
    return MonaiBackbone("UNet", unet_kwargs(channels=(4, 8, 16), strides=(2, 2), norm="batch"))


def test_structures_cover_aal_and_merge_sides():
    assert structure_of("Frontal_Sup_Orb_L") == structure_of("Frontal_Sup_Orb_R") == 1
    assert STRUCTURES[structure_of("Cerebelum_Crus1_R") - 1] == "cerebellum"
    assert STRUCTURES[structure_of("Vermis_4_5") - 1] == "cerebellum"
    assert STRUCTURES[structure_of("Thalamus_L") - 1] == "deep_grey"
    assert STRUCTURES[structure_of("Heschl_L") - 1] == "temporal"
    with pytest.raises(DataError, match="belongs to no structure"):
        structure_of("Ventricle_L")
    labels = np.array([[[0, 1, 2, 3, 4]]], np.int16)
    assert structure_map(labels, NAMES).tolist() == [[[0, 1, 1, 2, 2]]]


def test_dice_matches_naive_reference():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (3, 1, 6, 5, 4), generator=g)
    target[target == 2] = 1  # class 2 absent from the target: left out of the mean
    pred = torch.randint(0, 4, (3, 1, 6, 5, 4), generator=g)
    naive = []
    for c in (1, 3):
        a, b = pred == c, target == c
        naive.append(2 * (a & b).sum().item() / (a.sum() + b.sum()).item())
    assert dice_score(pred, target, 4) == pytest.approx(np.mean(naive), abs=1e-6)
    assert dice_score(target, target, 4) == 1.0


def test_task_keeps_hemispheres_apart():
    v = _volume()
    xs = np.broadcast_to(np.arange(64, dtype=np.float32)[:, None, None] / 64, v.image.shape)
    t = atlas_task(np.ascontiguousarray(xs), structure_map(v.labels, v.names), TINY)
    assert t.train_x.shape == t.test_x.shape == (8, 1, 16, 16, 16) and t.num_classes == 3  # 4 per class
    assert float(t.train_x.max()) < 32 / 64  # all left of the middle (axis 0)
    assert float(t.test_x[t.test_x > 0].min()) > 32 / 64
    assert set(t.train_y.unique().tolist()) == set(t.test_y.unique().tolist()) == {0, 1, 2}
    with pytest.raises(DataError, match="fewer than"):
        atlas_task(v.image, structure_map(v.labels, v.names), FewShotSegConfig(shots=10**6, patch=16))


def test_perfect_segmenter_scores_one():
    probe = fewshot_dice_probe(_volume(), None, TINY)
    oracle = SimpleNamespace(segmenter=lambda n: _Oracle())
    assert probe("trained", None, "cpu", oracle) == 1.0


def test_fine_tuning_beats_no_fine_tuning_and_is_deterministic():
    v = _volume()
    t = atlas_task(v.image, structure_map(v.labels, v.names), TINY)
    scores = {}
    for steps in (0, TINY.steps):
        torch.manual_seed(0)
        seg = _unet().segmenter(3)
        scores[steps] = finetune_dice(seg, t, steps, TINY.batch_size, TINY.lr, 0.0, seed=0)
    assert scores[TINY.steps] > 0.65 and scores[TINY.steps] > scores[0] + 0.3, scores
    bb = _unet()
    before = {k: v.clone() for k, v in bb.state_dict().items()}
    probe = fewshot_dice_probe(v, None, TINY)
    torch.manual_seed(123)
    a = probe("trained", None, "cpu", bb)
    after = torch.rand(1)
    torch.manual_seed(123)
    assert torch.equal(after, torch.rand(1))  # the probe leaves torch's global generator alone
    assert probe("trained", None, "cpu", bb) == a  # deterministic
    assert a > scores[0] + 0.3  # the seeds differ from the direct run above
    assert all(torch.equal(before[k], w) for k, w in bb.state_dict().items())  # the backbone is not touched


def test_none_where_it_does_not_apply():
    probe = fewshot_dice_probe(_volume(), None, TINY)
    assert probe("raw_input", None, "cpu", None) is None
    assert probe("trained", None, "cpu", nn.Linear(2, 2)) is None
    vit = MonaiBackbone(
        "ViTAutoEnc",
        {
            "in_channels": 1,
            "img_size": 16,
            "patch_size": 16,
            "hidden_size": 8,
            "mlp_dim": 8,
            "num_layers": 1,
            "num_heads": 1,
        },
    )
    assert probe("trained", None, "cpu", vit) is None


def test_networks_needing_larger_inputs_get_large_patches():
    cfg = FewShotSegConfig(shots=1, test_per_class=1, patch=16, steps=2, large_patch=24, large_steps=1)
    sizes = []

    class Oracle(_Oracle):
        def forward(self, x):
            sizes.append(x.shape[-1])
            return super().forward(x)

    big = SimpleNamespace(segmenter=lambda n: Oracle(), min_segment_size=24)
    assert fewshot_dice_probe(_volume(), None, cfg)("trained", None, "cpu", big) == 1.0
    assert set(sizes) == {24}


def test_attention_networks_get_the_short_fine_tuning():
    cfg = FewShotSegConfig(shots=2, test_per_class=1, patch=16, steps=6, batch_size=2, large_steps=3)
    batches = []

    class Oracle(_Oracle):
        def forward(self, x):
            if self.training:
                batches.append((x.shape[0], x.shape[-1]))
            return super().forward(x)

    heavy = SimpleNamespace(segmenter=lambda n: Oracle(), heavy_finetune=True)
    fewshot_dice_probe(_volume(), None, cfg)("trained", None, "cpu", heavy)
    assert batches == [(1, 16)] * 3
    batches.clear()
    light = SimpleNamespace(segmenter=lambda n: Oracle())
    fewshot_dice_probe(_volume(), None, cfg)("trained", None, "cpu", light)
    assert batches == [(2, 16)] * 6


def test_aal_structures():
    from ssl_medical.data.atlas import load_atlas

    try:
        atlas = load_atlas()
    except DataError as e:
        pytest.skip(str(e))
    classes = structure_map(atlas.labels, atlas.names)
    assert set(np.unique(classes).tolist()) == set(range(8))
    for lid in range(1, 109, 2):  # left and right twins share a structure
        assert structure_of(atlas.names[lid]) == structure_of(atlas.names[lid + 1])
    t = atlas_task(atlas.image, classes, FewShotSegConfig())
    assert t.train_x.shape == (14, 1, 64, 64, 64) and t.test_x.shape == (14, 1, 64, 64, 64) and t.num_classes == 8
    assert set(t.test_y.unique().tolist()) == set(range(8))

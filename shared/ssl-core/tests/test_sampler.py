import torch

from ssl_core.train.data import PretextDataset, SeededBatchSampler, to_device


def _indices(batches):
    return [i for b in batches for i, _ in b]


def test_epoch_is_a_permutation_without_the_incomplete_batch():
    s = SeededBatchSampler(num_samples=50, batch_size=8, seed=3)
    batches = list(s)
    assert len(batches) == len(s) == 6
    idx = _indices(batches)
    assert len(set(idx)) == 48 and set(idx) <= set(range(50))
    s.set_epoch(1)
    assert _indices(list(s)) != idx  # another order next epoch
    s.set_epoch(0)
    assert _indices(list(s)) == idx  # and the same order for the same epoch


def test_ranks_split_each_global_batch():
    single = list(SeededBatchSampler(40, 8, seed=1))
    r0 = list(SeededBatchSampler(40, 4, seed=1, rank=0, world_size=2))
    r1 = list(SeededBatchSampler(40, 4, seed=1, rank=1, world_size=2))
    assert len(r0) == len(r1) == len(single)
    for g, a, b in zip(single, r0, r1, strict=True):
        assert g == a + b  # same samples, same per-sample seeds


def test_resume_mid_epoch_and_stop_early():
    s = SeededBatchSampler(64, 8, seed=0)
    full = list(s)
    s.set_epoch(0, start_batch=3, end_batch=6)
    assert list(s) == full[3:6] and len(s) == 3


def test_pretext_is_deterministic_per_sample_and_leaves_global_rng_alone():
    ds = PretextDataset(torch.zeros(10, 3), lambda x: x + torch.randn(3))
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, b, c = ds[(4, 77)], ds[(4, 77)], ds[(4, 78)]
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.get_rng_state(), before)


def test_to_device_walks_nested_batches():
    from dataclasses import dataclass

    @dataclass
    class Views:
        x: torch.Tensor
        meta: str

    batch = {"views": (torch.zeros(2, 1, 4, 4), [torch.ones(3)]), "d": Views(torch.zeros(1), "m")}
    out = to_device(batch, torch.device("cpu"), channels_last=True)
    assert out["views"][0].is_contiguous(memory_format=torch.channels_last)
    assert isinstance(out["views"][1], list) and out["d"].meta == "m"

"""Sequence masks: BERT's 80/10/10 (against Hugging Face's collator), T5 span corruption (against T5's
algorithm) and wav2vec 2.0 time masks (against Hugging Face's ``_compute_mask_indices``), over many seeds."""

import ast
import importlib.util
import math
import pathlib

import numpy as np
import pytest
import torch

from ssl_core.errors import ConfigError
from ssl_core.masking import mlm_mask, span_mask, time_mask

VOCAB, MASK_ID, PAD, CLS, SEP = 50, 4, 0, 1, 2
SPECIALS = (PAD, CLS, SEP, 3, MASK_ID)


def _token_batch(b, length, seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (b, length), generator=g)
    ids[:, 0], ids[:, -1] = CLS, SEP
    ids[: b // 2, -5:] = PAD  # padding at the end of half the rows
    return ids


def _mlm_stats(inputs, labels, original):
    selected = labels != -100
    n = selected.sum().item()
    return {
        "selected": n / (original != PAD).sum().item(),
        "mask": ((inputs == MASK_ID) & selected).sum().item() / n,
        "unchanged": ((inputs == original) & selected).sum().item() / n,
    }


def test_mlm_mask_80_10_10_and_specials_never_masked():
    ids = _token_batch(64, 128, 0)
    inputs, labels = mlm_mask(
        ids, VOCAB, MASK_ID, special_token_ids=SPECIALS, generator=torch.Generator().manual_seed(1)
    )
    selected = labels != -100
    assert not selected[torch.isin(ids, torch.tensor(SPECIALS))].any()
    assert torch.equal(labels[selected], ids[selected]) and torch.equal(inputs[~selected], ids[~selected])
    random_replaced = selected & (inputs != MASK_ID) & (inputs != ids)
    assert not torch.isin(inputs[random_replaced], torch.tensor(SPECIALS)).any()  # our deliberate difference
    stats = _mlm_stats(inputs, labels, ids)
    n_selectable = (~torch.isin(ids, torch.tensor(SPECIALS))).sum().item()
    n_sel = selected.sum().item()
    assert abs(n_sel / n_selectable - 0.15) < 5 * math.sqrt(0.15 * 0.85 / n_selectable)
    assert abs(stats["mask"] - 0.8) < 5 * math.sqrt(0.16 / n_sel)
    # unchanged: 10% kept plus random draws that hit the original token (1 / 45 of the 10%)
    assert abs(stats["unchanged"] - (0.1 + 0.1 / 45)) < 5 * math.sqrt(0.09 / n_sel)


class _StubTokenizer:
    """What DataCollatorForLanguageModeling reads from a tokenizer when special_tokens_mask is given."""

    mask_token, pad_token, is_fast = "[MASK]", "[PAD]", True

    def convert_tokens_to_ids(self, token):
        return MASK_ID

    def __len__(self):
        return VOCAB


def test_mlm_mask_proportions_match_hugging_face():
    collator_module = pytest.importorskip("transformers.data.data_collator")
    collator = collator_module.DataCollatorForLanguageModeling(tokenizer=_StubTokenizer(), mlm_probability=0.15)
    ids = _token_batch(64, 256, 2)
    specials = torch.isin(ids, torch.tensor(SPECIALS))
    torch.manual_seed(0)
    hf_inputs, hf_labels = collator.torch_mask_tokens(ids.clone(), special_tokens_mask=specials)
    inputs, labels = mlm_mask(
        ids, VOCAB, MASK_ID, special_tokens_mask=specials, generator=torch.Generator().manual_seed(0)
    )
    ours, theirs = _mlm_stats(inputs, labels, ids), _mlm_stats(hf_inputs, hf_labels, ids)
    n = (labels != -100).sum().item()
    for key in ours:
        assert abs(ours[key] - theirs[key]) < 6 * math.sqrt(0.25 / n), (key, ours, theirs)
    assert not (hf_labels != -100)[specials].any()


def test_whole_word_mlm_masks_words_together():
    b, length = 32, 60
    ids = torch.randint(5, VOCAB, (b, length), generator=torch.Generator().manual_seed(0))
    word_ids = torch.arange(length).div(3, rounding_mode="floor").expand(b, length).clone()  # 3 tokens a word
    word_ids[:, 0] = -1  # a [CLS]-like token outside words
    inputs, labels = mlm_mask(
        ids, VOCAB, MASK_ID, mlm_probability=0.3, word_ids=word_ids, generator=torch.Generator().manual_seed(1)
    )
    selected = (labels != -100).view(b, 20, 3)[:, 1:]  # words 1..19 are whole (word 0 lost its first token)
    assert ((selected.all(-1)) | (~selected.any(-1))).all()  # all of a word or none of it
    share = selected[..., 0].float().mean().item()
    assert abs(share - 0.3) < 5 * math.sqrt(0.21 / selected[..., 0].numel())
    assert (labels[:, 0] == -100).all()


def t5_random_spans_noise_mask(length, noise_density, mean_noise_span_length, rng):
    """T5's ``random_spans_noise_mask`` (text-to-text-transfer-transformer, preprocessors.py), in numpy."""
    num_noise_tokens = int(np.round(length * noise_density))
    num_noise_tokens = min(max(num_noise_tokens, 1), length - 1)
    num_noise_spans = max(int(np.round(num_noise_tokens / mean_noise_span_length)), 1)
    num_nonnoise_tokens = length - num_noise_tokens

    def random_segmentation(num_items, num_segments):
        first_in_segment = np.arange(num_items - 1) < num_segments - 1
        rng.shuffle(first_in_segment)
        segment_id = np.cumsum(np.pad(first_in_segment, [[1, 0]]))
        return np.unique(segment_id, return_counts=True)[1]

    noise = random_segmentation(num_noise_tokens, num_noise_spans)
    nonnoise = random_segmentation(num_nonnoise_tokens, num_noise_spans)
    interleaved = np.reshape(np.stack([nonnoise, noise], axis=1), [num_noise_spans * 2])
    starts = np.zeros(length, dtype=int)
    starts[np.cumsum(interleaved)[:-1]] = 1
    return np.cumsum(starts) % 2 == 1


def _runs(row):
    """Lengths of the runs of True in a 1-D bool array."""
    row = np.asarray(row, dtype=int)
    edges = np.diff(np.concatenate([[0], row, [0]]))
    return np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)


@pytest.mark.parametrize("length,density,mean_span", [(64, 0.15, 3.0), (100, 0.3, 5.0), (10, 0.5, 2.0)])
def test_span_mask_matches_t5(length, density, mean_span):
    ours = span_mask(2000, length, density, mean_span, generator=torch.Generator().manual_seed(0)).numpy()
    rng = np.random.default_rng(0)
    theirs = np.stack([t5_random_spans_noise_mask(length, density, mean_span, rng) for _ in range(2000)])
    num_noise = min(max(round(length * density), 1), length - 1)
    num_spans = max(round(num_noise / mean_span), 1)
    assert (ours.sum(1) == num_noise).all()
    assert all(len(_runs(row)) == num_spans for row in ours)
    assert not ours[:, 0].any()  # the first run is of kept tokens
    ours_hist = np.bincount(np.concatenate([_runs(r) for r in ours]), minlength=num_noise + 1) / (2000 * num_spans)
    their_hist = np.bincount(np.concatenate([_runs(r) for r in theirs]), minlength=num_noise + 1) / (2000 * num_spans)
    assert 0.5 * np.abs(ours_hist - their_hist).sum() < 0.03  # span-length distributions agree
    assert np.abs(ours.mean(0) - theirs.mean(0)).max() < 0.08  # and so do the positions


def _hf_compute_mask_indices():
    """Hugging Face's ``_compute_mask_indices`` taken from modeling_wav2vec2.py alone: a numpy function,
    while importing that module (and with it the transformers model stack) takes 10-25 s."""
    spec = importlib.util.find_spec("transformers")
    if spec is None:
        pytest.skip("transformers is not installed")
    path = pathlib.Path(spec.origin).parent / "models" / "wav2vec2" / "modeling_wav2vec2.py"
    tree = ast.parse(path.read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_compute_mask_indices")
    namespace = {"np": np, "torch": torch}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), str(path), "exec"), namespace)
    return namespace["_compute_mask_indices"]


def test_time_mask_matches_wav2vec2_statistics():
    compute_mask_indices = _hf_compute_mask_indices()
    n, length = 2000, 400  # 2.6 + u spans: the probabilistic rounding matters
    ours = time_mask(n, length, 0.065, 10, min_masks=2, generator=torch.Generator().manual_seed(0)).numpy()
    np.random.seed(0)
    # one row per call: HF draws its rounding noise once per batch, fairseq (and we) once per sample
    theirs = np.concatenate([compute_mask_indices((1, length), 0.065, 10, min_masks=2) for _ in range(n)])
    ours_counts, their_counts = ours.sum(1), theirs.sum(1)
    assert abs(ours_counts.mean() - their_counts.mean()) < 5 * their_counts.std() / math.sqrt(n)
    hist = lambda c: np.bincount(c, minlength=length + 1) / n  # noqa: E731
    assert 0.5 * np.abs(hist(ours_counts) - hist(their_counts)).sum() < 0.06
    assert all((_runs(r) >= 10).all() for r in ours[:200])  # masked runs are whole spans (possibly merged)


def test_time_mask_masks_about_half_of_the_frames_at_the_papers_setting():
    # the paper: each frame starts a span of M = 10 with probability p = 0.065; in the formula's terms
    # mask_prob = p * M = 0.65 (fairseq's and Hugging Face's configs), and overlaps leave about 49% masked
    mask = time_mask(2000, 400, generator=torch.Generator().manual_seed(0))
    share = mask.float().mean().item()
    assert 0.47 < share < 0.52, share
    # the share-before-overlap reading: 0.065 covers only about 6% of the frames
    low = time_mask(2000, 400, mask_prob=0.065, generator=torch.Generator().manual_seed(0)).float().mean().item()
    assert 0.05 < low < 0.08, low
    # same statistics as Hugging Face's mask at the same setting
    compute_mask_indices = _hf_compute_mask_indices()
    np.random.seed(0)
    theirs = np.concatenate([compute_mask_indices((1, 400), 0.65, 10, min_masks=2) for _ in range(500)])
    assert abs(theirs.mean() - share) < 0.01, (theirs.mean(), share)


def test_time_mask_respects_lengths_and_minimum():
    lengths = torch.tensor([40, 25, 9, 12])
    mask = time_mask(4, 40, mask_prob=0.0, mask_length=5, min_masks=2, lengths=lengths)
    for row, valid in zip(mask, lengths.tolist(), strict=True):
        assert not row[valid:].any()  # padding never masked
        assert row.sum() >= (5 if valid >= 10 else 0) and row.sum() <= 10
    assert mask[2].sum() == 5  # 9 frames hold one span of 5 only


def test_reproducible_and_errors():
    a = span_mask(3, 20, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, span_mask(3, 20, generator=torch.Generator().manual_seed(5)))
    with pytest.raises(ConfigError, match="noise_density"):
        span_mask(2, 10, noise_density=0.0)
    with pytest.raises(ConfigError, match="exceed 1"):
        mlm_mask(torch.zeros(2, 3, dtype=torch.long), 10, 4, mask_replace_prob=0.8, random_replace_prob=0.3)
    with pytest.raises(ValueError, match="lengths"):
        time_mask(2, 10, lengths=torch.tensor([11, 3]))

"""BIOptimus (seed 45): the curriculum mask ratio follows ``mask_ratio_schedule``, new words become single
tokens, the contextual distillation loss against a per-context reference (values and gradients), and the
switch to the extended vocabulary in a short training run."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssl_core.masking import mask_ratio_schedule
from ssl_core.testing import begin_step
from ssl_text.data.text import TextInfo, TextSample, pad_batch
from ssl_text.methods.bioptimus import (
    BIOptimus,
    BIOptimusConfig,
    contextual_distillation_loss,
    extend_tokenizer,
    find_contexts,
    select_new_words,
    teacher_targets,
)
from ssl_text.models.backbones import TextBackboneConfig
from ssl_text.tokenization import TokenizerSpec, dumps, encode, tokenizer_from_json, train_tokenizer, vocabulary_size

TEXTS = [
    "the international community met in geneva",
    "a pharmacology lecture on the international stage",
    "community health and pharmacology research",
    "the cat sat on the mat near the community garden",
    "international research on protein folding",
] * 12
TINY = TextBackboneConfig(arch="bert", hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, dropout=0.0)


@pytest.fixture(scope="module")
def info():
    tok = train_tokenizer(TEXTS, TokenizerSpec("words", 130, 1))
    ids = encode(tok, TEXTS, 24)
    return TextInfo(dumps(tok), "words", vocabulary_size(tok), 24, corpus_ids=ids)


def _method(info, **kw):
    torch.manual_seed(0)
    return BIOptimus(BIOptimusConfig(backbone=TINY, new_tokens=4, min_count=3, **kw), info)


def _batch(m, info, seed=0):
    torch.manual_seed(seed)
    pretext = m.pretext()
    texts = [TEXTS[i % len(TEXTS)] for i in range(40)]
    return m.collate()(
        [
            pretext(TextSample(ids, t, -1))
            for ids, t in zip(encode(tokenizer_from_json(info.tokenizer), texts, 24), texts, strict=True)
        ]
    )


def test_new_words_become_single_tokens(info):
    base = tokenizer_from_json(info.tokenizer)
    words = select_new_words(TEXTS, base, 3, 3)
    assert words == ["the", "community", "international"]  # most frequent first, each split by the base tokenizer
    ext = extend_tokenizer(info.tokenizer, words)
    for i, w in enumerate(words):
        assert len(base.encode(" " + w, add_special_tokens=False).ids) >= 2
        assert ext.encode("a " + w + " b", add_special_tokens=False).ids[1] == info.vocab_size + i
    assert ext.encode("internationally", add_special_tokens=False).ids[0] < info.vocab_size  # whole words only
    text = "The International community"
    # what the probes' re-tokenization relies on: base ids -> text -> extended ids as from the raw text
    assert ext.encode(base.decode(base.encode(text).ids)).ids == ext.encode(text).ids
    # a word that is already a vocabulary entry ("the" with a larger vocabulary) is not a new token
    bigger = train_tokenizer(TEXTS, TokenizerSpec("words", 300, 1))
    assert bigger.token_to_id("the") is not None and "the" not in select_new_words(TEXTS, bigger, 3, 3)
    contexts = find_contexts(TEXTS, base, ext, info.vocab_size, 2, 24)
    assert len(contexts) == 2 * len(words)
    for c in contexts:
        assert c.ext_ids[c.position] == info.vocab_size + c.word
        assert base.decode([c.base_ids[p] for p in c.pieces]).strip() == words[c.word]


def test_curriculum_mask_ratio_follows_the_schedule(info):
    m = _method(info, mask_ratio_start=0.1, mask_ratio_end=0.5, switch_fraction=0.99)
    schedule = m.schedules(50, 10)["mask_ratio"]
    np.testing.assert_allclose(schedule, mask_ratio_schedule(0.1, 0.5, 50))
    batch = _batch(m, info)
    real = batch["attention_mask"].bool() & (batch["input_ids"] > 4)
    for step in (0, 24, 49):
        begin_step(m, step, 50, 10)
        assert m.mask_ratio() == pytest.approx(schedule[step])
        shares = []
        for seed in range(20):
            batch["seed"] = torch.full_like(batch["seed"], seed)
            _, labels, _, _ = m.corrupt(batch)
            shares.append((labels != -100)[real].float().mean())
        assert float(torch.stack(shares).mean()) == pytest.approx(schedule[step], abs=0.02)


def test_contextual_distillation_loss_matches_a_per_context_reference(info):
    m = _method(info).eval()
    v0, k = m.base_vocab_size, len(m.new_words)
    new = torch.randn(k, 16, requires_grad=True)
    contexts = m.contexts
    ours = contextual_distillation_loss(m.backbone, new, v0, contexts, teacher_targets(m.backbone, contexts))
    word = m.backbone.input_embeddings().weight
    terms = []
    for c in contexts:  # one unpadded sequence at a time
        ones = torch.ones(1, len(c.base_ids), dtype=torch.long)
        with torch.no_grad():
            h_t = m.backbone.states(torch.tensor([c.base_ids]), ones)[0]
            target = sum(h_t[p] for p in c.pieces) / len(c.pieces)
        rows = [new[t - v0] if t >= v0 else word[t].detach() for t in c.ext_ids]
        h_s = m.backbone.model(
            inputs_embeds=torch.stack(rows)[None], attention_mask=torch.ones(1, len(rows))
        ).last_hidden_state
        terms.append(((h_s[0, c.position] - target) ** 2).mean())
    ref = torch.stack(terms).mean()
    torch.testing.assert_close(ours, ref)
    (g_ours,) = torch.autograd.grad(ours, new)
    (g_ref,) = torch.autograd.grad(ref, new)
    torch.testing.assert_close(g_ours, g_ref)


def test_training_switches_to_new_tokens_initialised_by_distillation(info):
    m = _method(info, distill_steps=40, distill_lr=0.05)
    phases = m.schedules(6, 3)["add_new_tokens"]
    assert phases.tolist() == [0, 0, 1, 1, 1, 1]  # the switch after step 3 of 6
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    v0 = m.base_vocab_size
    before = None
    for step in range(6):
        batch = _batch(m, info, seed=step)
        values = begin_step(m, step, 6, 3)
        out = m(batch)
        assert out.logs["mask_ratio"] == pytest.approx(mask_ratio_schedule(0.15, 0.2, 6)[step])
        opt.zero_grad()
        out.loss.backward()
        if step < 3:  # no new token exists yet: its embeddings get no gradient
            assert m.backbone.input_embeddings().weight.grad[v0:].abs().max() == 0
        opt.step()
        if step == 2:
            before = m.backbone.input_embeddings().weight[v0:].detach().clone()
        m.after_optimizer_step(step, values)
        assert bool(m.extended) == (step >= 2)
    first, last = m.distill_losses
    assert last < 0.5 * first  # fitted beyond the mean-of-pieces start
    assert not torch.equal(before, m.backbone.input_embeddings().weight[v0:].detach())
    probe = {k: batch[k] for k in ("input_ids", "attention_mask")}  # base ids, as the probes give them
    retok = m.retokenize(probe)
    assert (retok["input_ids"] >= v0).any() and (retok["input_ids"] < m.info.vocab_size).all()
    assert m.embed(probe).shape == (40, 16)
    torch.testing.assert_close(m.embed(probe), m.backbone(retok))
    assert F.mse_loss(m.embed(probe), m.embed(probe)) == 0


def test_export_carries_the_extended_tokenizer(tmp_path, info):
    from transformers import AutoModel, AutoTokenizer

    from ssl_text.export import save_pretrained

    m = _method(info).eval()
    hf_dir = save_pretrained(m.backbone, {"input": m.backbone_spec().input}, tmp_path)
    model, hf_tok = AutoModel.from_pretrained(hf_dir).eval(), AutoTokenizer.from_pretrained(hf_dir)
    texts = ["the international", "a community cat"]  # within max_length=24 in base tokens too
    enc = hf_tok(texts, padding=True, return_tensors="pt")
    new_id = m.base_vocab_size + m.new_words.index("international")
    assert new_id in enc["input_ids"][0].tolist() and len(hf_tok) == m.info.vocab_size
    base = tokenizer_from_json(info.tokenizer)  # the probes' inputs: base ids, re-tokenized by embed
    ours = m.embed(pad_batch([e.ids for e in base.encode_batch(texts)]))
    with torch.no_grad():
        h = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    torch.testing.assert_close((h * mask).sum(1) / mask.sum(1), ours, atol=1e-5, rtol=1e-5)

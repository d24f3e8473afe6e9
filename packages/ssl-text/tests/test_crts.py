"""C-RTS (seed 41): the PPMI statistics against their definition, clusters of co-occurring tokens, substitutes
drawn inside the original's cluster, and the detection loss against a per-token BCE written out."""

import math

import torch

from ssl_text.data.text import TextInfo, TextSample
from ssl_text.methods.crts import (
    CRTS,
    ClusterSubstitutionPretext,
    CRTSConfig,
    _cluster,
    cooccurrence_ppmi,
    token_clusters,
)
from ssl_text.models.backbones import TextBackboneConfig
from ssl_text.tokenization import NUM_SPECIAL, encode

TINY = TextBackboneConfig(arch="roberta", hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, dropout=0)


def _two_topics(n=300, seed=0):
    """Texts of two vocabularies that never meet: ids 40..59 and 60..79."""
    g = torch.Generator().manual_seed(seed)
    texts = []
    for i in range(n):
        lo = 40 if i % 2 else 60
        texts.append([2, *(lo + torch.randint(20, (12,), generator=g)).tolist(), 3])
    return texts


def test_ppmi_matches_its_definition():
    corpus = [[2, 40, 41, 42, 41, 3], [2, 42, 43, 3], [2, 41, 40, 3]]
    vocab, window = 45, 2
    count = torch.zeros(vocab, vocab)
    for ids in corpus:
        body = [t for t in ids if t >= NUM_SPECIAL]
        for i, a in enumerate(body):
            for j, b in enumerate(body):
                if i != j and abs(i - j) <= window:
                    count[a, b] += 1
    total = count.sum()
    ref = torch.zeros(vocab, vocab)
    for a in range(vocab):
        for b in range(vocab):
            if count[a, b] > 0:
                ref[a, b] = max(0.0, math.log(count[a, b] * total / (count[a].sum() * count[b].sum())))
    torch.testing.assert_close(cooccurrence_ppmi(corpus, vocab, window), ref)


def test_clusters_keep_vocabularies_that_never_meet_apart():
    clusters = token_clusters(_two_topics(), 100, num_clusters=6, window=2, svd_dim=8)
    assert (clusters[:NUM_SPECIAL] == -1).all() and (clusters[80:] == -1).all()  # special or unseen
    a, b = set(clusters[40:60].tolist()), set(clusters[60:80].tolist())
    assert -1 not in a | b and not a & b
    assert torch.equal(clusters, _cluster(_two_topics(), 100, 6, 2, 8, 0))  # deterministic (uncached)


def test_substitutes_come_from_the_original_cluster():
    clusters = token_clusters(_two_topics(), 100, num_clusters=6, window=2, svd_dim=8)
    pretext = ClusterSubstitutionPretext(clusters, 0.15)
    torch.manual_seed(0)
    selected = total = 0
    for ids in _two_topics(400, seed=1):
        out, labels = pretext(TextSample(ids, "", -1))
        for orig, new, y in zip(ids, out, labels, strict=True):
            if y == -100:
                assert new == orig  # untouched
            else:
                assert y == orig and new != orig and clusters[new] == clusters[orig]
                selected += 1
        total += len(ids) - 2
        assert labels[0] == labels[-1] == -100  # [CLS] / [SEP] never substituted
    assert 0.13 < selected / total < 0.17
    # a token alone in its cluster falls back to a uniform draw over the clustered vocabulary
    lonely = torch.full((100,), -1)
    lonely[40], lonely[41:60] = 0, 1
    out, labels = ClusterSubstitutionPretext(lonely, 1.0)(TextSample([2, 40, 40, 3], "", -1))
    assert all(40 <= t < 60 for t in out[1:3])


def _info():
    from ssl_text.tokenization import TokenizerSpec, dumps, train_tokenizer, vocabulary_size

    texts = ["the cat sat on the mat", "a dog ate the apple", "language models predict the next token"] * 20
    tok = train_tokenizer(texts, TokenizerSpec("words", 120, 1))
    ids = encode(tok, texts, 24)
    return TextInfo(dumps(tok), "words", vocabulary_size(tok), 24, corpus_ids=ids), ids


def test_crts_loss_is_the_per_token_bce_of_substitutions():
    info, ids = _info()
    torch.manual_seed(0)
    m = CRTS(CRTSConfig(backbone=TINY, num_clusters=4, svd_dim=4), info).eval()
    pretext = m.pretext()
    batch = m.collate()([pretext(TextSample(x, "", -1)) for x in ids[:12]])
    captured = {}
    m.head.register_forward_hook(lambda mod, inp, out: captured.setdefault("logits", out))
    loss = m(batch).loss
    z = captured["logits"]
    terms = []
    for b in range(z.shape[0]):
        for i in range(z.shape[1]):
            if batch["attention_mask"][b, i]:
                y = float(batch["labels"][b, i] != -100 and batch["labels"][b, i] != batch["input_ids"][b, i])
                p = torch.sigmoid(z[b, i])
                terms.append(-(y * torch.log(p) + (1 - y) * torch.log(1 - p)))
    ref = torch.stack(terms).mean()
    torch.testing.assert_close(loss, ref)
    w = m.head.out.weight
    (g_ours,) = torch.autograd.grad(loss, w, retain_graph=True)
    (g_ref,) = torch.autograd.grad(ref, w)
    torch.testing.assert_close(g_ours, g_ref)


def test_crts_step_trains_and_substitutes_in_cluster():
    info, ids = _info()
    torch.manual_seed(0)
    m = CRTS(CRTSConfig(backbone=TINY, num_clusters=4, svd_dim=4), info)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    pretext = m.pretext()
    losses = []
    for step in range(8):
        torch.manual_seed(step)
        batch = m.collate()([pretext(TextSample(x, "", -1)) for x in ids[:16]])
        sub = batch["labels"] != -100
        assert (m.clusters[batch["input_ids"][sub]] == m.clusters[batch["labels"][sub]]).all()
        out = m(batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]

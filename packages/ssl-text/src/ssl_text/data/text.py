"""From a corpus to a :class:`~ssl_core.data.DataBundle`: splits, a locally trained tokenizer, token ids,
padding, and the bag-of-words (TF-IDF) baseline of the probes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from ssl_core.data import DataBundle, LabeledSplit, stratified_split
from ssl_core.errors import ConfigError, DataError
from ssl_text.data.files import load_files
from ssl_text.data.lexicon import load_lexicon
from ssl_text.data.sources import LOADERS, RawCorpus
from ssl_text.tokenization import PAD_ID, TokenizerSpec, dumps, encode, train_tokenizer, vocabulary_size

DEFAULT_TOKENIZER = {"proteome": "char", "pfam_seeds": "char", "stdlib_code": "bytes", "urls": "url"}


@dataclass
class TextDataConfig:
    """Which texts to load and how to tokenize them (``--set data.<name>=<value>``).

    Args:
        name: the embedded corpus (see ``selfsup list``): ``fortunes``, ``wordnet``, ``python_docs``,
            ``stdlib_code``, ``proteome``, ``pfam_seeds`` or ``urls``.
        path: user data instead (``--data PATH``): a ``.txt`` file (one text per line), a ``.jsonl`` file
            (``text_field``, optional ``label_field``), a FASTA file, or a folder of them (class subfolders
            give labels).
        probe: the labelled corpus the probes use: ``same`` (the pretraining corpus, whose held-out test
            split is then not pretrained on) or another embedded corpus name.
        tokenizer: ``auto`` (by corpus: ``char`` for proteins, ``bytes`` for code, ``url`` for URLs, else
            ``words``) or one of ``words``, ``bytes``, ``url``, ``char``.
        vocab_size: tokenizer vocabulary, special tokens included.
        min_frequency: minimum count of a vocabulary entry.
        max_length: tokens per text, ``[CLS]`` and ``[SEP]`` included (longer texts are cut).
        test_fraction: share of each class held out as the probe test set (:func:`ssl_core.data.stratified_split`:
            a class of at least 2 texts keeps one on each side).
        max_probe_test: at most this many probe test texts (class-stratified; the rest is pretraining data).
        max_texts: at most this many pretraining texts (``None``: all).
        max_chars: lines longer than this (user files) are skipped and counted.
        text_field, label_field: JSONL field names.
        finetune_fractions: fractions of the probe training labels for the sample-efficiency curve
            (fine-tuning the whole backbone with a linear head; empty: no curve).
        finetune_max_train: the curve's 100%: a class-stratified subset of the probe training texts.
        finetune_epochs: passes over the labelled data of each fine-tuning run (at least 30 steps).
        lexicon: a FreeDict pair (``eng-fra``) whose translations enter the tokenizer's corpus and are
            handed to the method (code-switching); ``None``: no lexicon.
        seed: seeds the splits and subsets.
    """

    name: str = "fortunes"
    path: str | None = None
    probe: str = "same"
    tokenizer: str = "auto"
    vocab_size: int = 4096
    min_frequency: int = 2
    max_length: int = 64
    test_fraction: float = 0.2
    max_probe_test: int | None = 1000
    max_texts: int | None = None
    max_chars: int = 20_000
    text_field: str = "text"
    label_field: str = "label"
    finetune_fractions: list[float] = field(default_factory=list)
    finetune_max_train: int = 2000
    finetune_epochs: float = 1.0
    lexicon: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        names = ", ".join(LOADERS)
        if self.name not in LOADERS:
            raise ConfigError(f"data.name must be one of {names}, got {self.name!r}")
        if self.probe != "same" and self.probe not in LOADERS:
            raise ConfigError(f"data.probe must be 'same' or one of {names}, got {self.probe!r}")
        if self.tokenizer != "auto":
            TokenizerSpec(self.tokenizer, self.vocab_size, self.min_frequency)
        if self.max_length < 8:
            raise ConfigError(f"data.max_length must be at least 8, got {self.max_length}")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"data.test_fraction must lie in (0, 1), got {self.test_fraction}")
        if any(not 0 < f <= 1 for f in self.finetune_fractions):
            raise ConfigError(f"data.finetune_fractions must lie in (0, 1], got {list(self.finetune_fractions)}")
        for k in ("max_probe_test", "max_texts"):
            if getattr(self, k) is not None and getattr(self, k) < 1:
                raise ConfigError(f"data.{k} must be positive, got {getattr(self, k)}")


class TextSample(NamedTuple):
    """One pretraining text: its token ids (``[CLS] ... [SEP]``), the text itself, and its document
    (``-1`` when the corpus has no documents)."""

    ids: list[int]
    text: str
    doc: int


@dataclass
class TextInfo:
    """What text models need to know about the data.

    Args:
        tokenizer: the trained tokenizer as JSON (saved with the run in ``backbone.json``).
        tokenizer_kind: its kind (``words``, ``bytes``, ``url``, ``char``).
        vocab_size: ids the tokenizer produces.
        max_length: tokens per text.
        num_classes: probe classes (``None`` without labels).
        num_documents: documents of the pretraining corpus (0: no documents).
        lexicon: bilingual lexicon, English word -> translations (``data.lexicon``), else empty.
        paragraphs: token ids of every pretraining text of a corpus with documents (else empty), and
        paragraph_doc: the document of each, for objectives that draw pairs across texts (span origin).
        corpus_ids: token ids of every pretraining text, for objectives built on corpus statistics (the
            token clusters of C-RTS, the new words of BIOptimus).
    """

    tokenizer: str
    tokenizer_kind: str
    vocab_size: int
    max_length: int
    num_classes: int | None = None
    num_documents: int = 0
    lexicon: dict[str, list[str]] = field(default_factory=dict)
    paragraphs: list[list[int]] = field(default_factory=list)
    paragraph_doc: list[int] = field(default_factory=list)
    corpus_ids: list[list[int]] = field(default_factory=list)


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int = PAD_ID) -> dict[str, torch.Tensor]:
    """Right-pad token id lists to the longest one.

    Shapes:
        - output: ``{"input_ids": (B, L) long, "attention_mask": (B, L) long}``
    """
    length = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), length), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return {"input_ids": ids, "attention_mask": mask}


class TfIdf:
    """The bag-of-words baseline: TF-IDF over the ``max_features`` tokens of the vocabulary that occur in
    most pretraining texts (sublinear term frequency, smoothed inverse document frequency, L2-normalised
    rows: scikit-learn's ``TfidfVectorizer(sublinear_tf=True, max_features=...)`` over token ids). It is
    scored by the same kNN and logistic-regression probes as the embeddings.

    Shapes:
        - call: ``{"input_ids": (B, L), "attention_mask": (B, L)} -> (B, max_features)``
    """

    def __init__(
        self, corpus: Sequence[Sequence[int]], vocab_size: int, max_features: int = 1024, ignore: int = 5
    ) -> None:
        df = torch.zeros(vocab_size)
        for ids in corpus:
            df[torch.as_tensor(sorted(set(ids)), dtype=torch.long)] += 1
        df[:ignore] = -1  # [PAD] [UNK] [CLS] [SEP] [MASK] carry no content
        kept = df.argsort(descending=True, stable=True)[: min(max_features, int((df > 0).sum()))]
        self.num_features = len(kept)
        self.column = torch.full((vocab_size,), self.num_features, dtype=torch.long)  # other tokens: dropped
        self.column[kept] = torch.arange(self.num_features)
        self.idf = torch.log((1 + len(corpus)) / (1 + df[kept])) + 1

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        cols, mask = self.column[batch["input_ids"].cpu()], batch["attention_mask"].cpu()
        tf = torch.zeros(len(cols), self.num_features + 1)
        tf.scatter_add_(1, cols, mask.float())
        tf = tf[:, :-1]
        x = torch.where(tf > 0, 1 + tf.clamp_min(1e-12).log(), 0.0) * self.idf
        return torch.nn.functional.normalize(x, dim=1)


def _held_out(labels: list[int], test_fraction: float, max_test: int | None, seed: int) -> set[int]:
    """Indices of the labelled texts (label >= 0) held out for testing: :func:`ssl_core.data.stratified_split`
    with the fraction lowered so that about ``max_test`` texts are held out (a class of at least 2 texts
    keeps one on each side, so the count can exceed ``max_test`` by up to the number of classes)."""
    n_labelled = sum(1 for y in labels if y >= 0)
    frac = test_fraction if max_test is None else min(test_fraction, max_test / max(n_labelled, 1))
    return set(stratified_split(labels, frac, seed)[1].tolist())


def _load(name: str, cfg: TextDataConfig) -> RawCorpus:
    return LOADERS[name]()


def _summary(corpus: RawCorpus) -> str:
    if not corpus.skipped:
        return ""
    return "; skipped " + ", ".join(f"{n:,} {k}" for k, n in sorted(corpus.skipped.items()))


@dataclass
class LabelledTexts:
    """The probe corpus after the split: token ids, labels, and optional retrieval queries."""

    train_ids: list[list[int]]
    train_labels: list[int]
    test_ids: list[list[int]]
    test_labels: list[int]
    test_queries: list[list[int]] | None = None
    train_texts: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)


def load_data(cfg: TextDataConfig, extra_probes: dict[str, Callable] | None = None) -> DataBundle:
    """Load the corpus ``cfg`` names, train its tokenizer, and assemble the pretraining and probe data."""
    corpus = load_files(cfg) if cfg.path is not None else _load(cfg.name, cfg)
    probe = corpus if cfg.probe == "same" else _load(cfg.probe, cfg)
    kind = cfg.tokenizer
    if kind == "auto":
        fasta = corpus.name == "files" and all(t.isalpha() and t.isupper() for t in corpus.texts[:50])
        kind = "char" if fasta else DEFAULT_TOKENIZER.get(corpus.name, "words")

    # the held-out probe test texts are never pretrained on
    held_out: set[int] = set()
    if probe.labels is not None:
        held_out = _held_out(probe.labels, cfg.test_fraction, cfg.max_probe_test, cfg.seed)
    own = probe is corpus
    pre_idx = [i for i in range(len(corpus.texts)) if not (own and i in held_out)]
    if cfg.max_texts is not None and len(pre_idx) > cfg.max_texts:
        g = torch.Generator().manual_seed(cfg.seed)
        pre_idx = sorted(torch.tensor(pre_idx)[torch.randperm(len(pre_idx), generator=g)[: cfg.max_texts]].tolist())
    if not pre_idx:
        raise DataError(f"the corpus {corpus.source} has no text to pretrain on")

    probe_inputs = probe.probe_texts if probe.probe_texts is not None else probe.texts
    train_lab = [i for i in range(len(probe.texts)) if probe.labels is not None and probe.labels[i] >= 0]
    train_lab = [i for i in train_lab if i not in held_out]
    test_lab = sorted(held_out)

    spec = TokenizerSpec(kind, cfg.vocab_size, cfg.min_frequency)
    tok_texts = [corpus.texts[i] for i in pre_idx]
    if not own:
        tok_texts += [probe_inputs[i] for i in train_lab]
    if probe.probe_texts is not None:
        tok_texts += [probe.probe_texts[i] for i in train_lab]
    lexicon = load_lexicon(cfg.lexicon) if cfg.lexicon else {}
    if lexicon:  # the tokenizer must also cover the translations that code-switching puts in
        tok_texts += [" ".join(v) for v in lexicon.values()]
    tokenizer = train_tokenizer(tok_texts, spec)
    vocab = vocabulary_size(tokenizer)

    pre_texts = [corpus.texts[i] for i in pre_idx]
    pre_ids = encode(tokenizer, pre_texts, cfg.max_length)
    docs = corpus.documents
    train = [TextSample(ids, t, docs[i] if docs else -1) for ids, t, i in zip(pre_ids, pre_texts, pre_idx, strict=True)]

    desc = (
        f"{corpus.name} from {corpus.source}: {len(train):,} pretraining texts, "
        f"{kind} tokenizer of {vocab:,} tokens trained here, at most {cfg.max_length} tokens per text"
        + _summary(corpus)
    )
    info = TextInfo(
        dumps(tokenizer), kind, vocab, cfg.max_length, num_documents=len(set(docs)) if docs else 0, lexicon=lexicon
    )
    info.corpus_ids = pre_ids
    if docs:
        info.paragraphs, info.paragraph_doc = [t.ids for t in train], [t.doc for t in train]
    if probe.labels is None or not train_lab or not test_lab:
        return DataBundle(train=train, info=info, description=desc + "; no labels, so no probes", raw_features=None)

    info.num_classes = len(probe.classes)
    tr_ids = encode(tokenizer, [probe_inputs[i] for i in train_lab], cfg.max_length)
    te_ids = encode(tokenizer, [probe_inputs[i] for i in test_lab], cfg.max_length)
    y_tr = torch.tensor([probe.labels[i] for i in train_lab])
    y_te = torch.tensor([probe.labels[i] for i in test_lab])
    desc += (
        f"; probes: {probe.name} labels ({len(probe.classes)} classes), {len(tr_ids):,} train / "
        f"{len(te_ids):,} held-out test texts"
    )
    bundle = DataBundle(
        train=train,
        info=info,
        description=desc,
        probe_train=LabeledSplit(tr_ids, y_tr),
        probe_test=LabeledSplit(te_ids, y_te),
        collate_fn=pad_batch,
        raw_features=TfIdf(pre_ids, vocab),
    )
    labelled = LabelledTexts(
        tr_ids,
        y_tr.tolist(),
        te_ids,
        y_te.tolist(),
        test_queries=encode(tokenizer, [probe.queries[i] for i in test_lab], cfg.max_length) if probe.queries else None,
        classes=list(probe.classes),
    )
    bundle.extra_probes = _extra_probes(cfg, labelled, bundle)
    return bundle


def _extra_probes(cfg: TextDataConfig, labelled: LabelledTexts, bundle: DataBundle) -> dict[str, Callable]:
    from ssl_core.eval.finetune import finetune_curve_probes
    from ssl_text.eval import retrieval_probe

    probes: dict[str, Any] = {}
    if labelled.test_queries is not None:
        probes["mrr@10"] = retrieval_probe(labelled.test_queries, labelled.test_ids)
    if cfg.finetune_fractions:
        probes.update(
            finetune_curve_probes(
                bundle.probe_train,
                bundle.probe_test,
                len(labelled.classes),
                cfg.finetune_fractions,
                max_train=cfg.finetune_max_train,
                epochs=cfg.finetune_epochs,
                collate_fn=pad_batch,
                seed=cfg.seed,
            )
        )
    return probes

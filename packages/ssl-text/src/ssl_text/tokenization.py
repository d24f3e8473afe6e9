"""Tokenizers trained locally with Hugging Face ``tokenizers`` (no hub downloads), saved with the run.

Every tokenizer shares one set of special tokens at fixed ids, so every method can rely on them:
``[PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4`` and the span-corruption sentinels ``<extra_id_0>`` ...
``<extra_id_{N-1}>`` (T5, Raffel et al., 2020) right after them. ``[CLS]`` doubles as the beginning of
sequence of causal models and ``[SEP]`` as their end.

Kinds (chosen by the data: :data:`TOKENIZER_KINDS`):

- ``words``: byte-level BPE over lower-cased, accent-stripped text (natural language; RoBERTa's tokenizer
  model, rather than BERT's WordPiece because the ``tokenizers`` WordPiece trainer does not give the same vocabulary
  twice for one corpus, and a run must rebuild its tokenizer exactly on ``--resume`` and ``selfsup eval``);
- ``bytes``: byte-level BPE as in GPT-2 / CodeT5 (source code: keeps case, spaces and indentation);
- ``url``: BPE over URL pieces, split at the URL delimiters ``/ . - _ ? = & : # ~ %`` and kept
  (URLBERT, Li et al., 2024, trains a BPE tokenizer on URLs);
- ``char``: one token per character (protein sequences: the amino-acid alphabet, as TAPE; case-sensitive).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from ssl_core.errors import ConfigError

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
NUM_SENTINELS = 32
SENTINELS = tuple(f"<extra_id_{i}>" for i in range(NUM_SENTINELS))
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK, *SENTINELS)
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = 0, 1, 2, 3, 4
FIRST_SENTINEL_ID = 5
NUM_SPECIAL = len(SPECIAL_TOKENS)
TOKENIZER_KINDS = ("words", "bytes", "url", "char")
URL_DELIMITERS = r"[/.\-_?=&:#~%+@!,;]"


@dataclass(frozen=True)
class TokenizerSpec:
    """How to train a tokenizer.

    Args:
        kind: one of :data:`TOKENIZER_KINDS`.
        vocab_size: target vocabulary size, special tokens included (ignored by ``char``).
        min_frequency: a merge or word piece must occur this often to enter the vocabulary.
    """

    kind: str = "words"
    vocab_size: int = 4096
    min_frequency: int = 2

    def __post_init__(self) -> None:
        if self.kind not in TOKENIZER_KINDS:
            raise ConfigError(f"data.tokenizer must be one of {', '.join(TOKENIZER_KINDS)}, got {self.kind!r}")
        if self.kind != "char" and self.vocab_size < NUM_SPECIAL + 64:
            raise ConfigError(f"data.vocab_size must be at least {NUM_SPECIAL + 64}, got {self.vocab_size}")


def _new_tokenizer(kind: str) -> tuple[Tokenizer, trainers.Trainer | None]:
    if kind in ("words", "bytes"):
        tok = Tokenizer(models.BPE(unk_token=UNK))
        if kind == "words":
            tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True, clean_text=True)
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        return tok, trainers.BpeTrainer
    if kind == "url":
        tok = Tokenizer(models.BPE(unk_token=UNK))
        tok.normalizer = normalizers.Lowercase()
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(URL_DELIMITERS), behavior="isolated")
        tok.decoder = decoders.Fuse()
        return tok, trainers.BpeTrainer
    # char: a word-level model over single characters
    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.normalizer = normalizers.Strip()
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return tok, None


def train_tokenizer(texts: Iterable[str], spec: TokenizerSpec) -> Tokenizer:
    """Train a tokenizer of ``spec.kind`` on ``texts`` (deterministic for the same texts and spec).

    The special tokens take ids ``0 .. NUM_SPECIAL - 1`` in the order of :data:`SPECIAL_TOKENS`, and
    encoding adds ``[CLS] ... [SEP]`` around every text.
    """
    tok, trainer_cls = _new_tokenizer(spec.kind)
    texts = list(texts)
    if spec.kind == "char":
        alphabet = sorted({c for t in texts for c in t.strip()})
        vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
        for c in alphabet:
            vocab.setdefault(c, len(vocab))
        tok.model = models.WordLevel(vocab, unk_token=UNK)
    else:
        kw = {"initial_alphabet": pre_tokenizers.ByteLevel.alphabet()} if spec.kind in ("words", "bytes") else {}
        trainer = trainer_cls(
            vocab_size=spec.vocab_size,
            min_frequency=spec.min_frequency,
            special_tokens=list(SPECIAL_TOKENS),
            show_progress=False,
            **kw,
        )
        tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    tok.post_processor = processors.TemplateProcessing(
        single=f"{CLS} $A {SEP}", pair=f"{CLS} $A {SEP} $B {SEP}", special_tokens=[(CLS, CLS_ID), (SEP, SEP_ID)]
    )
    for i, t in enumerate(SPECIAL_TOKENS):
        if tok.token_to_id(t) != i:  # pragma: no cover - guards the fixed-id contract against library changes
            raise RuntimeError(f"special token {t} got id {tok.token_to_id(t)}, expected {i}")
    return tok


def encode(tok: Tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of each text, ``[CLS] ... [SEP]``, cut to ``max_length`` (the cut keeps the final ``[SEP]``)."""
    out = []
    for enc in tok.encode_batch(list(texts)):
        ids = enc.ids
        if len(ids) > max_length:
            ids = ids[: max_length - 1] + [SEP_ID]
        out.append(ids)
    return out


def to_transformers(tok: Tokenizer, max_length: int):
    """The tokenizer as a ``transformers.PreTrainedTokenizerFast`` (for ``save_pretrained`` and
    ``AutoTokenizer.from_pretrained``)."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        unk_token=UNK,
        cls_token=CLS,
        sep_token=SEP,
        mask_token=MASK,
        bos_token=CLS,
        eos_token=SEP,
        additional_special_tokens=list(SENTINELS),
        model_max_length=max_length,
    )


def tokenizer_from_json(text: str) -> Tokenizer:
    """Rebuild a tokenizer saved with :meth:`Tokenizer.to_str` (as stored in a run's ``backbone.json``)."""
    try:
        return Tokenizer.from_str(text)
    except Exception as e:  # tokenizers raises a bare Exception on malformed JSON
        raise ConfigError(f"cannot read the saved tokenizer: {str(e).splitlines()[0]}") from None


def vocabulary_size(tok: Tokenizer) -> int:
    """Number of ids the tokenizer can produce (added tokens included)."""
    return tok.get_vocab_size(with_added_tokens=True)


def dumps(tok: Tokenizer) -> str:
    """The tokenizer as compact JSON (deterministic key order, so equal tokenizers give equal strings)."""
    return json.dumps(json.loads(tok.to_str()), sort_keys=True, separators=(",", ":"))

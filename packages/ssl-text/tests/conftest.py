"""Tiny corpora and configs shared by the ssl-text tests."""

import pytest

from ssl_text.data.text import TextInfo, TextSample
from ssl_text.tokenization import TokenizerSpec, dumps, encode, tokenizer_from_json, train_tokenizer, vocabulary_size

CORPUS = [
    "the cat sat on the mat",
    "a dog ate the apple and the cat",
    "self supervised learning from unlabeled text",
    "the quick brown fox jumps over the lazy dog",
    "language models predict the next token",
] * 8


@pytest.fixture(scope="session")
def tiny_info() -> TextInfo:
    tok = train_tokenizer(CORPUS, TokenizerSpec("words", 120, 1))
    return TextInfo(dumps(tok), "words", vocabulary_size(tok), 24, num_classes=2)


@pytest.fixture(scope="session")
def tiny_samples():
    """``tiny_samples(info, n=None)``: the samples of :data:`CORPUS` (repeated to ``n`` when given), encoded with
    ``info``'s tokenizer."""

    def samples(info: TextInfo, n: int | None = None) -> list[TextSample]:
        tok = tokenizer_from_json(info.tokenizer)
        texts = CORPUS if n is None else (CORPUS * (n // len(CORPUS) + 1))[:n]
        return [TextSample(ids, t, -1) for ids, t in zip(encode(tok, texts, info.max_length), texts, strict=True)]

    return samples

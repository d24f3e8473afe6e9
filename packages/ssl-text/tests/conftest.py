"""Tiny corpora and configs shared by the ssl-text tests."""

import pytest

from ssl_text.data.text import TextInfo
from ssl_text.tokenization import TokenizerSpec, dumps, train_tokenizer, vocabulary_size

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

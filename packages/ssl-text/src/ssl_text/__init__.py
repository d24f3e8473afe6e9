"""selfsup for text, code and protein sequences: corpora, tokenizers, backbones and the ``text/<method>``
recipes (see README.md)."""

__version__ = "0.1.0"

"""Text data: the embedded corpora, user files, tokenization into a DataBundle."""

from ssl_text.data.sources import DATASETS, RawCorpus
from ssl_text.data.text import TextDataConfig, TextInfo, TextSample, TfIdf, load_data, pad_batch

__all__ = ["DATASETS", "RawCorpus", "TextDataConfig", "TextInfo", "TextSample", "TfIdf", "load_data", "pad_batch"]

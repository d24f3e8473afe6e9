"""Corpora, user files (and their bad input), tokenizers, splits and the TF-IDF baseline."""

import json

import pytest
import torch

from ssl_core.errors import ConfigError, DataError
from ssl_text.data import sources
from ssl_text.data.files import load_files
from ssl_text.data.lexicon import load_lexicon
from ssl_text.data.text import TextDataConfig, TfIdf, load_data, pad_batch
from ssl_text.tokenization import (
    CLS_ID,
    MASK,
    NUM_SPECIAL,
    PAD_ID,
    SEP_ID,
    SPECIAL_TOKENS,
    TokenizerSpec,
    dumps,
    encode,
    to_transformers,
    train_tokenizer,
)


def test_fortunes_and_wordnet_have_their_categories():
    f = sources.load_fortunes()
    assert len(f.classes) == 43 and len(f.texts) > 14_000 and len(f.labels) == len(f.texts)
    w = sources.load_wordnet()
    assert len(w.texts) == 117_659 and len(w.classes) == 45
    assert set(w.labels) <= set(range(45)) and len(set(w.labels)) == 45
    cat = next(i for i, t in enumerate(w.texts) if t.startswith("feline mammal usually having thick soft fur"))
    assert w.classes[w.labels[cat]] == "noun.animal"


def test_stdlib_code_pairs_and_urls_and_proteins():
    code = sources.load_stdlib_code(max_files=40)
    assert code.texts and len(code.queries) == len(code.texts)
    i = 0
    assert code.texts[i].lstrip().startswith(("def ", "async def ", "@")) and '"""' not in code.texts[i][:200]
    urls = sources.load_urls(roots=[sources._url_roots()[0]], num_classes=4)
    assert all(u.startswith(("http://", "https://")) for u in urls.texts)
    assert all(not p.startswith("http") for p in urls.probe_texts) and len(urls.classes) == 4
    prot = sources.load_proteome()
    assert len(prot.texts) == 2100 and all(set(s) <= set("ACDEFGHIKLMNPQRSTVWYXBZUO") for s in prot.texts)
    pfam = sources.load_pfam_seeds()
    assert pfam.classes == list(sources.PFAM_FAMILIES) and len(pfam.texts) == 276 and "-" not in "".join(pfam.texts)
    docs = sources.load_python_docs()
    assert len(set(docs.documents)) > 50 and len(docs.documents) == len(docs.texts)


def test_lexicon_reads_freedict():
    lex = load_lexicon("eng-fra")
    assert len(lex) > 5000 and "chat" in lex["cat"]
    with pytest.raises(DataError, match="apt-get install dict-freedict-xxx-yyy"):
        load_lexicon("xxx-yyy")


@pytest.mark.parametrize("kind", ["words", "bytes", "url", "char"])
def test_tokenizers_fix_special_ids_and_are_deterministic(kind):
    texts = ["https://docs.python.org/3/library/ast.html", "def f(x):\n    return x + 1", "MKVLAAGIIG"] * 20
    spec = TokenizerSpec(kind, 200, 1)
    a, b = train_tokenizer(texts, spec), train_tokenizer(texts, spec)
    assert dumps(a) == dumps(b)
    assert [a.token_to_id(t) for t in SPECIAL_TOKENS] == list(range(NUM_SPECIAL))
    ids = encode(a, texts[:3], 12)
    assert all(s[0] == CLS_ID and s[-1] == SEP_ID and len(s) <= 12 for s in ids)
    hf = to_transformers(a, 12)
    assert hf.pad_token_id == PAD_ID and hf.mask_token == MASK
    assert hf(texts[0], truncation=True, max_length=12)["input_ids"][0] == CLS_ID


def test_code_tokenizer_keeps_indentation():
    tok = train_tokenizer(["def f(x):\n    return x\n"] * 10, TokenizerSpec("bytes", 120, 1))
    assert tok.decode(tok.encode("def f(x):\n    return x\n").ids) == "def f(x):\n    return x\n"


def test_user_files_skip_bad_input_with_counts(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "good.txt").write_bytes(b"first text\nsecond text\n\xff\xfe broken bytes\n" + b"x" * 500 + b"\n")
    (tmp_path / "a" / "empty.txt").write_bytes(b"")
    (tmp_path / "b" / "more.jsonl").write_text(
        json.dumps({"text": "third text"}) + "\nnot json\n" + json.dumps({"other": 1}) + "\n"
    )
    corpus = load_files(TextDataConfig(path=str(tmp_path), max_chars=100))
    assert corpus.texts == ["first text", "second text", "third text"]
    assert corpus.classes == ["a", "b"] and corpus.labels == [0, 0, 1]
    assert corpus.skipped == {
        "lines that are not UTF-8": 1,
        "over-long lines": 1,
        "empty files": 1,
        "lines that are not JSON": 1,
        "records without a 'text' string": 1,
    }


def test_empty_or_missing_corpus_is_a_clear_error(tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(DataError, match="the corpus is empty .*1 empty files"):
        load_files(TextDataConfig(path=str(tmp_path / "empty.txt")))
    (tmp_path / "sub").mkdir()
    with pytest.raises(DataError, match="no text files"):
        load_files(TextDataConfig(path=str(tmp_path / "sub")))
    with pytest.raises(DataError, match="data path not found"):
        load_files(TextDataConfig(path=str(tmp_path / "missing.txt")))
    with pytest.raises(ConfigError, match="data.name must be one of"):
        TextDataConfig(name="wikipedia")


def test_fasta_and_jsonl_labels_make_a_bundle(tmp_path):
    fasta = tmp_path / "p.faa"
    fasta.write_text("".join(f">p{i}\n{'MKV' * (i + 3)}\nLLA*\n" for i in range(30)) + ">empty\n\n")
    bundle = load_data(TextDataConfig(path=str(fasta)))
    assert bundle.info.tokenizer_kind == "char" and bundle.probe_train is None and len(bundle.train) == 30
    assert "1 empty sequences" in bundle.description
    jl = tmp_path / "t.jsonl"
    rows = [{"text": f"text number {i} about {'cats' if i % 2 else 'dogs'}", "label": i % 2} for i in range(60)]
    jl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    b = load_data(TextDataConfig(path=str(jl), vocab_size=120, min_frequency=1))
    assert b.info.num_classes == 2 and len(b.probe_test.labels) == 12 and len(b.train) == 48
    test_texts = {tuple(x) for x in b.probe_test.inputs}
    assert not test_texts & {tuple(s.ids) for s in b.train}, "held-out probe texts must not be pretrained on"


def test_tfidf_matches_scikit_learn():
    from sklearn.feature_extraction.text import TfidfVectorizer

    docs = [[2, 7, 7, 9, 3], [2, 8, 9, 9, 9, 3], [2, 7, 10, 3], [2, 11, 3]]
    tfidf = TfIdf(docs, vocab_size=12, max_features=100)
    ours = tfidf(pad_batch(docs))
    vec = TfidfVectorizer(analyzer=lambda d: [t for t in d if t >= 5], sublinear_tf=True, lowercase=False)
    ref = torch.tensor(vec.fit_transform(docs).toarray(), dtype=torch.float32)
    cols = [int(tfidf.column[t]) for t in vec.get_feature_names_out()]
    torch.testing.assert_close(ours[:, cols], ref)
    assert torch.count_nonzero(ours) == torch.count_nonzero(ref)


def test_the_probe_split_keeps_each_class_on_both_sides(tmp_path):
    """The held-out texts are ssl_core.data.stratified_split's test part (with the fraction lowered to respect
    max_probe_test): a class of 2 texts keeps one for training; an unlabelled text is pretrained on only."""
    jl = tmp_path / "t.jsonl"
    rows = [{"text": f"text {i} about cats", "label": "cats"} for i in range(2)]
    rows += [{"text": f"text {i} about dogs", "label": "dogs"} for i in range(8)] + [{"text": "no label here"}]
    jl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    b = load_data(TextDataConfig(path=str(jl), vocab_size=120, min_frequency=1, test_fraction=0.8))
    assert sorted(b.probe_train.labels.tolist()) == [0, 1, 1] and sorted(b.probe_test.labels.tolist()) == [0] + [1] * 6
    assert len(b.train) == 4  # the 3 probe training texts and the unlabelled one

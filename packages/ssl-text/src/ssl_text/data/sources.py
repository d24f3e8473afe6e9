"""The embedded corpora: every one is read offline from a Debian package, the interpreter or a wheel.

Each loader returns a :class:`RawCorpus`. Sources (see ``shared/research/offline-data.md``):

- ``fortunes``: Debian ``fortunes`` + ``fortunes-min``, ~15k texts in 43 categories (the file names);
- ``wordnet``: Debian ``wordnet-base``, ~118k glosses labelled by their 45 lexicographer files (supersenses);
- ``python_docs``: the Python reference topics shipped with the interpreter (``pydoc_data``), 79 documents
  split into paragraphs, for objectives that need documents (span origin);
- ``stdlib_code``: functions of the Python standard library with their docstrings (docstring -> code
  retrieval pairs; the top-level module is the class label);
- ``proteome``: the 2,100-protein proteome in pyhmmer's test data (unlabelled);
- ``pfam_seeds``: Pfam seed alignments of 7 protein families in Debian ``hmmer-examples`` (labelled by
  family, TAPE-style family classification);
- ``urls``: URLs found in the Python sources of the standard library and of the installed
  ``transformers``/``huggingface_hub``/``torch`` packages; the label is the site (host) among the most
  frequent ones, and the probe input is the URL without its scheme and host.
"""

from __future__ import annotations

import ast
import gzip
import importlib.util
import re
import sysconfig
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ssl_core.errors import DataError

FORTUNES_DIR = Path("/usr/share/games/fortunes")
WORDNET_DIR = Path("/usr/share/wordnet")
HMMER_EXAMPLES = Path("/usr/share/doc/hmmer/examples")
PFAM_FAMILIES = {  # family -> seed alignment in hmmer-examples (the families with at least 9 sequences)
    "fn3": "tutorial/fn3.sto",
    "RRM_1": "testsuite/RRM_1.sto.gz",
    "Pkinase": "tutorial/Pkinase.sto",
    "SMC_N": "testsuite/SMC_N.sto.gz",
    "LuxC": "testsuite/LuxC.sto.gz",
    "Patched": "testsuite/Patched.sto.gz",
    "Caudal_act": "testsuite/Caudal_act.sto.gz",
}
# WordNet's lexicographer files, in the order of their numbers (lexnames(5WN)).
WORDNET_LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location noun.motive "
    "noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process noun.quantity "
    "noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change verb.cognition "
    "verb.communication verb.competition verb.consumption verb.contact verb.creation verb.emotion verb.motion "
    "verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
STDLIB_SKIP = {"test", "tests", "idlelib", "lib2to3", "turtledemo", "site-packages", "ensurepip", "pydoc_data"}
URL_PACKAGES = ("transformers", "huggingface_hub", "torch")
URL_PATTERN = re.compile(r"https?://[^\s<>\"'`)\]}\\|^]+")


@dataclass
class RawCorpus:
    """Texts before tokenization.

    Args:
        name: the data set's name.
        texts: the texts (pretraining texts; also the probe inputs when ``labels`` is given).
        labels: one class index per text, or ``None`` (unlabelled).
        classes: class names, indexed by label.
        queries: for retrieval data, the query of each text (a docstring for a function).
        probe_texts: the probe inputs when they differ in form from ``texts`` (URLs without their host).
        documents: the document index of each text, for objectives over documents (``None``: none).
        source: where it was read from, for the run's description.
        skipped: what was skipped while reading, ``reason -> count`` (reported, never silent).
    """

    name: str
    texts: list[str]
    labels: list[int] | None = None
    classes: list[str] = field(default_factory=list)
    queries: list[str] | None = None
    probe_texts: list[str] | None = None
    documents: list[int] | None = None
    source: str = ""
    skipped: Counter = field(default_factory=Counter)


def _need(path: Path, package: str) -> None:
    if not path.exists():
        raise DataError(f"{path} not found: apt-get install {package} (or run scripts/setup.sh), or pass --data PATH")


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # a few fortune files are Latin-1
        return raw.decode("latin-1")


def load_fortunes(root: Path = FORTUNES_DIR) -> RawCorpus:
    """Every fortune of Debian's ``fortunes``/``fortunes-min``, labelled by its file (43 categories)."""
    _need(root, "fortunes fortunes-min")
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.suffix and not p.is_symlink())
    texts, labels, classes = [], [], []
    skipped = Counter()
    for p in files:
        entries = [e.strip() for e in _decode(p.read_bytes()).split("\n%\n")]
        entries = [e.strip("%").strip() for e in entries]
        kept = [e for e in entries if e]
        skipped["empty entries"] += len(entries) - len(kept)
        if not kept:
            continue
        classes.append(p.name)
        texts += kept
        labels += [len(classes) - 1] * len(kept)
    if not texts:
        raise DataError(f"no fortunes found in {root}: apt-get install fortunes fortunes-min")
    return RawCorpus("fortunes", texts, labels, classes, source=str(root), skipped=skipped)


def load_wordnet(root: Path = WORDNET_DIR) -> RawCorpus:
    """WordNet 3.0 glosses, each labelled by its synset's lexicographer file (45 supersenses)."""
    _need(root, "wordnet-base")
    texts, labels = [], []
    for pos in ("noun", "verb", "adj", "adv"):
        path = root / f"data.{pos}"
        _need(path, "wordnet-base")
        for line in path.read_text("utf-8", errors="replace").splitlines():
            if line.startswith("  ") or "|" not in line:  # the licence header is indented
                continue
            head, gloss = line.split("|", 1)
            texts.append(gloss.strip())
            labels.append(int(head.split()[1]))
    return RawCorpus("wordnet", texts, labels, list(WORDNET_LEXNAMES), source=str(root))


def load_python_docs() -> RawCorpus:
    """The Python reference topics of ``pydoc_data`` (shipped with the interpreter): paragraphs (blank-line
    separated, at least 8 words) with the index of their topic as the document."""
    from pydoc_data.topics import topics

    texts, docs = [], []
    for d, name in enumerate(sorted(topics)):
        for para in re.split(r"\n\s*\n", topics[name]):
            para = " ".join(para.split())
            if len(para.split()) >= 8:
                texts.append(para)
                docs.append(d)
    return RawCorpus("python_docs", texts, documents=docs, source="pydoc_data.topics (the Python reference)")


def _stdlib_files(root: Path, limit: int | None) -> list[Path]:
    files = []
    for p in sorted(root.rglob("*.py")):
        parts = p.relative_to(root).parts
        if any(x in STDLIB_SKIP or x.startswith(("test_", "_test")) or x.startswith(".") for x in parts):
            continue
        files.append(p)
    return files[:limit] if limit else files


def _function_without_docstring(source: str, node: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    lines = source.splitlines()
    body0 = node.body[0]
    start = node.lineno - 1 if not node.decorator_list else node.decorator_list[0].lineno - 1
    keep = lines[start : body0.lineno - 1] + lines[body0.end_lineno : node.end_lineno]
    if len(keep) < 2:
        return None
    indent = min(len(x) - len(x.lstrip()) for x in keep if x.strip())
    return "\n".join(x[indent:] for x in keep)


def load_stdlib_code(root: Path | None = None, max_files: int | None = None, num_classes: int = 20) -> RawCorpus:
    """Documented functions of the Python standard library: the code without its docstring, the docstring's
    first paragraph as the retrieval query, and the top-level module as the label (the ``num_classes``
    modules with most functions; functions of other modules are kept unlabelled for pretraining)."""
    root = Path(sysconfig.get_paths()["stdlib"]) if root is None else root
    codes, queries, modules = [], [], []
    skipped = Counter()
    for p in _stdlib_files(root, max_files):
        try:
            source = p.read_text("utf-8")
            tree = ast.parse(source)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            skipped["unparsable files"] += 1
            continue
        module = p.relative_to(root).parts[0].removesuffix(".py")
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            doc = ast.get_docstring(node)
            if not doc:
                continue
            query = " ".join(doc.split("\n\n")[0].split())
            code = _function_without_docstring(source, node)
            if code is None or len(query.split()) < 3:
                skipped["functions too short"] += 1
                continue
            codes.append(code)
            queries.append(query)
            modules.append(module)
    if not codes:
        raise DataError(f"no documented functions found under {root}")
    top = [m for m, _ in Counter(modules).most_common(num_classes)]
    index = {m: i for i, m in enumerate(top)}
    labels = [index.get(m, -1) for m in modules]  # -1: pretraining only
    return RawCorpus(
        "stdlib_code", codes, labels, top, queries=queries, source=f"the standard library in {root}", skipped=skipped
    )


def _fasta(text: str) -> list[tuple[str, str]]:
    out, name, seq = [], None, []
    for line in text.splitlines():
        if line.startswith(">"):
            if name is not None:
                out.append((name, "".join(seq)))
            name, seq = line[1:].strip(), []
        elif line.strip():
            seq.append(line.strip())
    if name is not None:
        out.append((name, "".join(seq)))
    return out


def proteome_path() -> Path:
    """The proteome FASTA file in pyhmmer's test data."""
    spec = importlib.util.find_spec("pyhmmer")
    if spec is None or spec.origin is None:
        raise DataError("pyhmmer is not installed (pip install pyhmmer); or pass --data with a FASTA file")
    return Path(spec.origin).parent / "tests" / "data" / "seqs" / "938293.PRJEB85.HG003687.faa"


def load_proteome() -> RawCorpus:
    """The 2,100 proteins of pyhmmer's test proteome (a Prodigal gene call of one genome), unlabelled; the
    stop codon ``*`` is dropped."""
    path = proteome_path()
    if not path.is_file():
        raise DataError(f"{path} not found: reinstall pyhmmer, or pass --data with a FASTA file")
    seqs = [s.rstrip("*") for _, s in _fasta(path.read_text())]
    return RawCorpus("proteome", [s for s in seqs if s], source=str(path))


def _stockholm(text: str) -> list[str]:
    seqs: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith(("#", "//")):
            continue
        name, aligned = line.split()[:2]
        seqs.setdefault(name, []).append(aligned)
    return ["".join(c for c in "".join(parts) if c.isalpha()).upper() for parts in seqs.values()]


def load_pfam_seeds(root: Path = HMMER_EXAMPLES) -> RawCorpus:
    """Sequences of the Pfam seed alignments in Debian's ``hmmer-examples``, labelled by family (7 families,
    276 sequences)."""
    _need(root, "hmmer-examples")
    texts, labels, classes = [], [], []
    for fam, rel in PFAM_FAMILIES.items():
        path = root / rel
        _need(path, "hmmer-examples")
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
        seqs = _stockholm(raw.decode("utf-8", errors="replace"))
        classes.append(fam)
        texts += seqs
        labels += [len(classes) - 1] * len(seqs)
    return RawCorpus("pfam_seeds", texts, labels, classes, source=str(root))


def _url_roots() -> list[Path]:
    roots = [Path(sysconfig.get_paths()["stdlib"])]
    for name in URL_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin is not None:
            roots.append(Path(spec.origin).parent)
    return roots


def _host(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def load_urls(roots: list[Path] | None = None, num_classes: int = 16, max_length: int = 200) -> RawCorpus:
    """Unique URLs in the Python sources of the standard library and of ``transformers``,
    ``huggingface_hub`` and ``torch`` (sorted, so the corpus is the same for the same installed versions).

    The label is the host among the ``num_classes`` most frequent ones (others: unlabelled); the probe input
    is the URL without ``scheme://host`` (which site a URL points to, read from its path and query).
    """
    urls: set[str] = set()
    roots = _url_roots() if roots is None else roots
    for root in roots:
        for p in root.rglob("*.py"):
            urls.update(u.rstrip(".,;:") for u in URL_PATTERN.findall(p.read_text("utf-8", errors="ignore")))
    urls = sorted(u for u in urls if _host(u) and len(u) <= max_length and "{" not in u)
    if not urls:
        raise DataError("no URLs found in the Python sources; pass --data with a file of URLs, one per line")
    hosts = [_host(u) for u in urls]
    top = [h for h, _ in Counter(hosts).most_common(num_classes)]
    index = {h: i for i, h in enumerate(top)}
    labels = [index.get(h, -1) for h in hosts]
    paths = []
    for u in urls:
        s = urlsplit(u)
        paths.append(u[len(f"{s.scheme}://{s.netloc}") :] or "/")
    return RawCorpus(
        "urls",
        urls,
        labels,
        top,
        probe_texts=paths,
        source="URLs in the Python sources of " + ", ".join(map(str, roots)),
    )


LOADERS = {
    "fortunes": load_fortunes,
    "wordnet": load_wordnet,
    "python_docs": load_python_docs,
    "stdlib_code": load_stdlib_code,
    "proteome": load_proteome,
    "pfam_seeds": load_pfam_seeds,
    "urls": load_urls,
}
DATASETS = {
    "fortunes": "Debian fortunes: ~15,000 texts in 43 categories (probe labels)",
    "wordnet": "WordNet 3.0 glosses (Debian wordnet-base): ~118,000 definitions in 45 supersenses",
    "python_docs": "the Python reference topics (pydoc_data): paragraphs of 79 documents, for span-origin tasks",
    "stdlib_code": "documented functions of the Python standard library: docstring -> code pairs, module labels",
    "proteome": "2,100 proteins of one genome, from pyhmmer's test data",
    "pfam_seeds": "Pfam seed sequences of 7 families (Debian hmmer-examples), family labels",
    "urls": "URLs in the Python sources of the standard library, transformers and torch; site labels",
    "files": "--data PATH: .txt (one text per line), .jsonl (text/label fields), FASTA, or a folder of them "
    "(class subfolders give probe labels)",
}

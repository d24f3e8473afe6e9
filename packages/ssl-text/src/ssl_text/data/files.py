"""User text: plain text (one text per line), JSONL and FASTA files, or a folder of them.

Reading never stops half-way on bad input: empty files, lines that are not valid UTF-8, over-long
lines and malformed JSON lines are skipped and counted, and the counts are reported with the data set.
A corpus with nothing left raises a :class:`~ssl_core.errors.DataError` that says what was skipped.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from ssl_core.errors import DataError
from ssl_text.data.sources import RawCorpus, _fasta

TEXT_SUFFIXES = (".txt", ".text")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
FASTA_SUFFIXES = (".fasta", ".fa", ".faa", ".fas")
SUFFIXES = TEXT_SUFFIXES + JSONL_SUFFIXES + FASTA_SUFFIXES


def _lines(path: Path, max_chars: int, skipped: Counter) -> list[str]:
    """The file's non-empty lines; undecodable and over-long lines are skipped and counted."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    if not raw.strip():
        skipped["empty files"] += 1
        return []
    out = []
    for line in raw.split(b"\n"):
        if len(line) > 4 * max_chars:  # cheap pre-check before decoding a huge line
            skipped["over-long lines"] += 1
            continue
        try:
            text = line.decode("utf-8").strip()
        except UnicodeDecodeError:
            skipped["lines that are not UTF-8"] += 1
            continue
        if len(text) > max_chars:
            skipped["over-long lines"] += 1
        elif text:
            out.append(text)
    return out


def _read_file(path: Path, cfg, skipped: Counter) -> list[tuple[str, str | None]]:
    """``(text, label or None)`` of every record in one file."""
    suffix = path.suffix.lower()
    if suffix in FASTA_SUFFIXES:
        recs = _fasta("\n".join(_lines(path, cfg.max_chars, skipped)))
        seqs = [s.rstrip("*") for _, s in recs]
        skipped["empty sequences"] += sum(not s for s in seqs)
        return [(s, None) for s in seqs if s]
    lines = _lines(path, cfg.max_chars, skipped)
    if suffix not in JSONL_SUFFIXES:
        return [(t, None) for t in lines]
    out = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            skipped["lines that are not JSON"] += 1
            continue
        text = rec.get(cfg.text_field) if isinstance(rec, dict) else None
        if not isinstance(text, str) or not text.strip():
            skipped[f"records without a '{cfg.text_field}' string"] += 1
            continue
        label = rec.get(cfg.label_field)
        out.append((text.strip(), None if label is None else str(label)))
    return out


def _files(root: Path) -> list[Path]:
    if not os.access(root, os.R_OK | os.X_OK):
        raise DataError(f"cannot read the folder {root}: permission denied")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    return [p for p in files if not any(part.startswith(".") for part in p.relative_to(root).parts)]


def load_files(cfg) -> RawCorpus:
    """Read ``cfg.path``: a file or a folder of ``.txt`` / ``.jsonl`` / FASTA files.

    Labels come from the JSONL ``label`` field (``cfg.label_field``) or, in a folder, from class subfolders
    (``root/<class>/...``); a corpus with fewer than two classes is unlabelled (no probes).
    """
    root = Path(cfg.path).expanduser()
    if not root.exists():
        raise DataError(f"data path not found: {root}")
    files = _files(root) if root.is_dir() else [root]
    if not files:
        raise DataError(f"no text files in {root} (looked for {', '.join(SUFFIXES)}, also in subfolders)")
    skipped: Counter = Counter()
    records: list[tuple[str, str | None]] = []
    for p in files:
        recs = _read_file(p, cfg, skipped)
        if root.is_dir() and len(p.relative_to(root).parts) > 1:
            sub = p.relative_to(root).parts[0]
            recs = [(t, lab if lab is not None else sub) for t, lab in recs]
        records += recs
    if not records:
        what = ", ".join(f"{n} {k}" for k, n in skipped.items()) or "nothing readable"
        raise DataError(f"no text in {root}: the corpus is empty ({what}); pass a file with one text per line")
    names = [lab for _, lab in records]
    classes = sorted({n for n in names if n is not None})
    labels = None
    if len(classes) > 1:
        index = {c: i for i, c in enumerate(classes)}
        labels = [index[n] if n is not None else -1 for n in names]
    return RawCorpus(
        "files", [t for t, _ in records], labels, classes if labels else [], source=str(root), skipped=skipped
    )

"""Bilingual lexicons from the FreeDict dictionaries Debian packages for dictd (read offline).

``dict-freedict-eng-fra`` installs ``/usr/share/dictd/freedict-eng-fra.{index,dict.dz}``: the index maps a
headword to the offset and length (in dictd's base-64 digits) of its entry in the gzip-compatible data
file; an entry is the headword line (with its pronunciation) followed by the translations, numbered when
there are several.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from ssl_core.errors import DataError

DICTD_DIR = Path("/usr/share/dictd")
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_WORD = re.compile(r"^[a-z][a-z'-]*$")


def _b64(s: str) -> int:
    n = 0
    for c in s:
        n = n * 64 + _B64.index(c)
    return n


def load_lexicon(pair: str = "eng-fra", root: Path = DICTD_DIR, max_words: int = 3) -> dict[str, list[str]]:
    """Single-word English headwords -> their translations (of at most ``max_words`` words).

    Args:
        pair: the FreeDict pair, e.g. ``eng-fra`` (Debian ``dict-freedict-eng-fra``).
        root: where dictd dictionaries are installed.
        max_words: longer translations (explanations rather than equivalents) are dropped.
    """
    index, data = root / f"freedict-{pair}.index", root / f"freedict-{pair}.dict.dz"
    if not index.is_file() or not data.is_file():
        raise DataError(f"the {pair} lexicon is not installed: apt-get install dict-freedict-{pair} (scripts/setup.sh)")
    text = gzip.open(data).read()
    lexicon: dict[str, list[str]] = {}
    for line in index.read_text("utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or not _WORD.match(parts[0]):
            continue
        start, length = _b64(parts[1]), _b64(parts[2])
        entry = text[start : start + length].decode("utf-8", errors="replace").splitlines()[1:]
        out = []
        for t in entry:
            for alt in re.sub(r"^\d+\.\s*", "", t.strip()).split(","):
                alt = alt.strip()
                if alt and len(alt.split()) <= max_words and alt.lower() != parts[0]:
                    out.append(alt)
        if out:
            lexicon[parts[0]] = sorted(set(out))
    if not lexicon:
        raise DataError(f"no entries read from {index}")
    return lexicon

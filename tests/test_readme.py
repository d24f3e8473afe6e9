"""The README's commands and methods table agree with the code."""

import re

from helpers import ROOT
from ssl_core.registry import discover

README = (ROOT / "README.md").read_text()


def _bash_blocks():
    return re.findall(r"```bash\n(.*?)```", README, flags=re.S)


def test_the_two_commands():
    blocks = _bash_blocks()
    assert blocks[0].strip() == "./scripts/setup.sh && uv run selfsup pretrain vision/simclr"
    test_command = blocks[1].strip()
    assert test_command == "uv run --locked pytest"
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command in ci and "./scripts/setup.sh" in ci


def test_methods_table_lists_exactly_the_registered_methods():
    listed = set(re.findall(r"^\| (\w+/\w+) \|", README, flags=re.M))
    registered = {f"{m}/{r}" for m, mod in discover().modalities.items() for r in mod.recipes}
    assert listed == registered
    for row in re.findall(r"^\| \w+/\w+ \|.*$", README, flags=re.M):
        assert "TBD" not in row and re.search(r"\d+\.\d+%", row), f"row without measured numbers: {row}"

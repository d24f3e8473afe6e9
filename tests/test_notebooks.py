"""The research notebooks in ``notebooks/`` are stored without outputs, say first what they answer and how long they
run, are listed in ``notebooks/README.md``, and import at least two workspace packages through public names only.

They are executed by nbmake as part of the test command (``--nbmake`` in the root pyproject.toml); these checks
read the ``.ipynb`` JSON and parse the code cells with ``ast``, so they import nothing. Each rule has a test on
a small synthetic notebook that shows it fails where it should.
"""

from __future__ import annotations

import ast
import json

import pytest

from helpers import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# the import names of the workspace members (shared/ssl-core/src/ssl_core, packages/ssl-*/src/ssl_*)
WORKSPACE = frozenset(
    p.name for p in [*ROOT.glob("shared/*/src/ssl_*"), *ROOT.glob("packages/*/src/ssl_*")] if p.is_dir()
)


def code_cells(nb: dict) -> list[str]:
    """The source of each code cell, IPython magics and shell lines (``%...``, ``!...``) left out."""
    cells = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        cells.append("\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in src.splitlines()))
    return cells


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def import_problems(sources: list[str]) -> tuple[set[str], list[str]]:
    """The workspace packages the cells import, and every use of a private workspace name.

    Private: a module path or imported name with a part starting with ``_`` (``from ssl_core._x import y``,
    ``from ssl_core.run import _say``), or an attribute starting with ``_`` read off a name bound to a workspace
    module (``import ssl_core; ssl_core.run._say``).
    """
    used, problems, bound = set(), [], set()
    for i, src in enumerate(sources):
        tree = ast.parse(src)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    top = alias.name.split(".")[0]
                    if top in WORKSPACE:
                        used.add(top)
                        bound.add(alias.asname or top)
                        if any(map(_private, alias.name.split("."))):
                            problems.append(f"cell {i}: import {alias.name}")
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                top = node.module.split(".")[0]
                if top in WORKSPACE:
                    used.add(top)
                    bad = [p for p in node.module.split(".") if _private(p)]
                    bad += [a.name for a in node.names if _private(a.name) or a.name == "*"]
                    if bad:
                        problems.append(f"cell {i}: from {node.module} import {', '.join(a.name for a in node.names)}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                root = node.value
                while isinstance(root, ast.Attribute):
                    root = root.value
                if isinstance(root, ast.Name) and root.id in bound:
                    problems.append(f"cell {i}: {ast.unparse(node)}")
    return used, problems


def stored_outputs(nb: dict) -> list[str]:
    """Code cells that carry outputs or an execution count."""
    return [
        f"cell {i}"
        for i, cell in enumerate(nb["cells"])
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]


def first_cell_problems(nb: dict) -> list[str]:
    first = nb["cells"][0] if nb["cells"] else None
    if first is None or first["cell_type"] != "markdown":
        return ["the first cell is not a markdown cell"]
    text = "".join(first["source"]).lower()
    return [f"the first cell does not say its {w}" for w in ("question", "runtime") if w not in text]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 1
    assert {"ssl_core", "ssl_vision"} <= WORKSPACE


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_clean_and_public(path):
    nb = json.loads(path.read_text())
    assert stored_outputs(nb) == [], f"{path.name} is stored with outputs: clear them before committing"
    assert first_cell_problems(nb) == []
    used, problems = import_problems(code_cells(nb))
    assert problems == [], f"{path.name} uses private names of the workspace: {problems}"
    assert len(used) >= 2, f"{path.name} imports {sorted(used)}: at least two workspace packages expected"


def test_readme_lists_every_notebook():
    readme = (ROOT / "notebooks" / "README.md").read_text()
    for path in NOTEBOOKS:
        assert path.name in readme, f"notebooks/README.md does not list {path.name}"


def _nb(*cells: tuple[str, str], outputs: bool = False) -> dict:
    made = []
    for kind, src in cells:
        cell = {"cell_type": kind, "source": src, "metadata": {}}
        if kind == "code":
            cell.update(outputs=[{"output_type": "stream", "text": "x"}] if outputs else [], execution_count=None)
        made.append(cell)
    return {"cells": made}


def test_the_checks_catch_what_they_should():
    good = _nb(
        ("markdown", "# Q\n**Question.** ... **Runtime here:** 1 min"),
        ("code", "%matplotlib inline\nimport ssl_core\nfrom ssl_vision.modality import modality\nssl_core.run"),
    )
    assert stored_outputs(good) == [] and first_cell_problems(good) == []
    assert import_problems(code_cells(good)) == ({"ssl_core", "ssl_vision"}, [])

    assert stored_outputs(_nb(("code", "1"), outputs=True)) == ["cell 0"]
    assert first_cell_problems(_nb(("code", "1"))) == ["the first cell is not a markdown cell"]
    assert first_cell_problems(_nb(("markdown", "# Title only"))) != []
    for bad in (
        "from ssl_core._harness import x",
        "from ssl_core.run import _say",
        "import ssl_core.kernels._impl",
        "import ssl_core\nssl_core.run._say('x')",
        "import ssl_core as c\nc._private",
        "from ssl_vision import *",
    ):
        used, problems = import_problems([bad])
        assert problems, bad
    used, _ = import_problems(["import torch\nfrom ssl_core.losses import nt_xent\nimport ssl_core"])
    assert used == {"ssl_core"}  # one workspace package: the notebook test would fail it

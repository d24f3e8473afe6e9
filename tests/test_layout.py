"""Every modality package has the same rooms, and no method module imports another method module (DESIGN.md,
"The one pipeline" and "Layout"): what two methods share lives in ``pretext/``, ``models/`` or the core.

The checks read the source tree (``ast``, ``tomllib``), so they import nothing; each has a test on a small
synthetic tree that shows it fails where it should.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path

from helpers import ROOT

# Rooms every registered modality package has, each a package whose __init__.py says in a docstring what it
# holds. transforms/ (augmentations) exists where the modality augments: vision and graph do; text corrupts
# tokens in pretext/ and has none, so it is checked where present.
ROOMS = ("data", "pretext", "models", "methods")
OPTIONAL_ROOMS = ("transforms",)
# modules of methods/ that are not methods: the package itself and the scaffolding every method of the
# package builds on (its backbone for the data, export spec, method base classes)
NOT_METHODS = frozenset({"__init__", "common"})
ENTRY_POINT_GROUP = "ssl_core.modalities"


def source_roots(root: Path) -> list[Path]:
    """The ``src`` folders of the workspace members."""
    return sorted(p for p in [root / "shared" / "ssl-core" / "src", *root.glob("packages/*/src")] if p.is_dir())


def _module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def method_files(src_roots: Iterable[Path]) -> dict[str, Path]:
    """Every module in a ``methods/`` folder of any package: ``{dotted name: path}`` (an ``__init__.py`` under
    the package's name)."""
    out = {}
    for src in src_roots:
        for path in sorted(src.glob("*/methods/*.py")):
            out[_module_name(path, src)] = path
    return out


def imported_names(path: Path, module: str) -> Iterator[tuple[int, str, tuple[str, ...]]]:
    """Every import of a file, lazy ones included: ``(line, module imported from, names imported)``; relative
    imports resolved against ``module``'s package, ``import a.b`` given as ``("a.b", ())``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            yield node.lineno, base, tuple(a.name for a in node.names)


def method_import_violations(src_roots: Iterable[Path]) -> list[str]:
    """Imports of a method module by another module of a ``methods/`` folder, in any package.

    A method module is any module of a ``methods/`` folder but ``__init__`` and ``common``. Importing a name
    from a ``methods`` package itself (``from ssl_text.methods import MLM``) counts as importing a method
    module, since the package re-exports them; ``common`` may be imported and may import no method. The
    ``__init__`` of a ``methods`` package, whose job is to gather the methods, is not checked.

    Returns:
        one line per offending import: ``path:line: importer imports target``.
    """
    files = method_files(src_roots)
    methods = {name for name, path in files.items() if path.stem not in NOT_METHODS}
    packages = {name.rpartition(".")[0] for name, path in files.items() if path.name != "__init__.py"}
    found = []
    for importer, path in files.items():
        if path.name == "__init__.py":
            continue
        for line, base, names in imported_names(path, importer):
            targets = []
            if base in methods or (not names and base in packages):  # import / from a method module or package
                targets.append(base)
            if base in packages:  # from ssl_x.methods import <a module, or a name the package re-exports>
                targets += [f"{base}.{n}" for n in names if n not in NOT_METHODS]
            targets += [f"{base}.{n}" for n in names if f"{base}.{n}" in packages]  # from ssl_x import methods
            for target in dict.fromkeys(targets):
                if target != importer:
                    found.append(f"{path}:{line}: {importer} imports {target}")
    return found


def registered_packages(root: Path) -> dict[str, Path]:
    """Packages that register a modality (entry point group ``ssl_core.modalities``): ``{module: package dir}``."""
    out = {}
    for pyproject in sorted(root.glob("packages/*/pyproject.toml")):
        meta = tomllib.loads(pyproject.read_text())
        for target in meta.get("project", {}).get("entry-points", {}).get(ENTRY_POINT_GROUP, {}).values():
            module = target.partition(":")[0]
            out[module] = pyproject.parent / "src" / module.split(".")[0]
    return out


def missing_rooms(root: Path) -> list[str]:
    """What a registered modality package lacks: a room of :data:`ROOMS` (a package whose ``__init__.py`` has a
    docstring), a docstring in a present optional room, or an entry point other than ``<package>.modality``."""
    problems = []
    for module, pkg in registered_packages(root).items():
        if module != f"{pkg.name}.modality" or not (pkg / "modality.py").is_file():
            problems.append(f"{pkg}: registers {module}; the modality belongs in {pkg.name}/modality.py")
        for room in ROOMS + tuple(r for r in OPTIONAL_ROOMS if (pkg / r).exists()):
            init = pkg / room / "__init__.py"
            if not init.is_file():
                problems.append(f"{pkg}: no {room}/ package (a folder with an __init__.py)")
            elif ast.get_docstring(ast.parse(init.read_text())) is None:
                problems.append(f"{init}: no docstring saying what the room holds")
    return problems


# ------------------------------------------------------------------------------------------------ the tree


def test_no_method_module_imports_another():
    assert method_files(source_roots(ROOT)), "found no methods/ folder: the check would pass vacuously"
    assert method_import_violations(source_roots(ROOT)) == []


def test_every_modality_package_has_the_rooms():
    registered = registered_packages(ROOT)
    assert {"ssl_vision.modality", "ssl_graph.modality", "ssl_text.modality"} <= registered.keys()
    assert missing_rooms(ROOT) == []


# ------------------------------------------------------------------------------------------------ the checks


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_import_check_finds_every_form_of_import(tmp_path):
    src_a, src_b = tmp_path / "a" / "src", tmp_path / "b" / "src"
    _write(
        src_a,
        {
            "pa/__init__.py": "",
            "pa/methods/__init__.py": "from pa.methods.one import One\n",
            "pa/methods/common.py": "from pa.models import net\n",
            "pa/methods/one.py": "from pa.methods.common import base\nfrom pa.pretext import views\n",
            "pa/methods/absolute.py": "from pa.methods.one import One\n",
            "pa/methods/relative.py": "from .one import One\n",
            "pa/methods/relative_module.py": "from . import one\n",
            "pa/methods/reexport.py": "from pa.methods import One\n",
            "pa/methods/plain.py": "import pa.methods.one\n",
            "pa/methods/parent.py": "from .. import methods\n",
            "pa/methods/lazy.py": "def f():\n    from pa.methods.one import One\n    return One\n",
            "pa/methods/shared_ok.py": "from . import common\nfrom ..pretext import views\n",
        },
    )
    _write(
        src_b,
        {
            "pb/__init__.py": "",
            "pb/methods/__init__.py": "",
            "pb/methods/cross.py": "from pa.methods.one import One\n",
            "pb/methods/common.py": "from pa.methods.one import One\n",
        },
    )
    found = method_import_violations([src_a, src_b])
    offenders = sorted({line.split(": ")[1].split(" imports ")[0] for line in found})
    assert offenders == sorted(
        f"p{x}"
        for x in [
            "a.methods.absolute",
            "a.methods.lazy",
            "a.methods.parent",
            "a.methods.plain",
            "a.methods.reexport",
            "a.methods.relative",
            "a.methods.relative_module",
            "b.methods.common",
            "b.methods.cross",
        ]
    ), found
    assert all(":" in line and " imports pa.methods" in line for line in found)


def test_the_room_check_names_what_is_missing(tmp_path):
    entry = '[project.entry-points."ssl_core.modalities"]\n{name} = "{module}:modality"\n'
    rooms = {f"src/ssl_ok/{r}/__init__.py": f'"""The {r}."""\n' for r in ROOMS}
    _write(tmp_path / "packages" / "ok", {"pyproject.toml": entry.format(name="ok", module="ssl_ok.modality"),
                                          "src/ssl_ok/modality.py": "", **rooms})  # fmt: skip
    bad_rooms = {f"src/ssl_bad/{r}/__init__.py": f'"""The {r}."""\n' for r in ("data", "methods")}
    _write(
        tmp_path / "packages" / "bad",
        {
            "pyproject.toml": entry.format(name="bad", module="ssl_bad.registry"),
            "src/ssl_bad/models/__init__.py": "x = 1\n",  # no docstring
            "src/ssl_bad/transforms/__init__.py": "",  # present, so checked
            **bad_rooms,
        },
    )
    _write(tmp_path / "packages" / "shell", {"pyproject.toml": '[project]\nname = "shell"\n'})  # registers nothing
    problems = missing_rooms(tmp_path)
    assert [p for p in problems if "ssl_ok" in p] == []
    bad = "\n".join(problems)
    assert "ssl_bad.registry" in bad and "no pretext/ package" in bad and "transforms/__init__.py: no docstring" in bad
    assert "models/__init__.py: no docstring" in bad and "shell" not in bad
    assert len(problems) == 4, problems

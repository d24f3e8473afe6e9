"""Discovery of the installed modality packages (entry-point group ``ssl_core.modalities``).

A modality package declares, in its ``pyproject.toml``::

    [project.entry-points."ssl_core.modalities"]
    vision = "ssl_vision.modality:modality"

and the object named there is a :class:`~ssl_core.modality.Modality`. Nothing is registered as a side
effect of importing a module: what is installed is what is listed.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from importlib.metadata import entry_points

from ssl_core.errors import ConfigError
from ssl_core.modality import Modality, Recipe

GROUP = "ssl_core.modalities"


@dataclass(frozen=True)
class Discovered:
    """The modalities that loaded, and the error of each one that did not."""

    modalities: dict[str, Modality]
    failed: dict[str, str]


def discover() -> Discovered:
    """Load every modality registered in the current environment."""
    found, failed = {}, {}
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            obj = ep.load()
        except Exception as e:  # a broken optional dependency must not hide the other modalities
            failed[ep.name] = f"{type(e).__name__}: {e}".splitlines()[0]
            continue
        if not isinstance(obj, Modality):
            failed[ep.name] = f"{ep.value} is a {type(obj).__name__}, not an ssl_core Modality"
            continue
        found[obj.name] = obj
    return Discovered(found, failed)


def get_modality(name: str) -> Modality:
    """The installed modality called ``name``, or a :class:`ConfigError` that lists the installed ones."""
    d = discover()
    if name in d.modalities:
        return d.modalities[name]
    if name in d.failed:
        raise ConfigError(f"modality {name!r} is installed but failed to load: {d.failed[name]}")
    known = ", ".join(sorted(d.modalities)) or "none"
    raise ConfigError(f"unknown modality {name!r} (installed: {known}); install its package, e.g. ssl-{name}")


def resolve(key: str) -> tuple[Modality, Recipe]:
    """Look up ``"<modality>/<method>"``, suggesting the closest names when it does not exist."""
    if key.count("/") != 1:
        raise ConfigError(f"expected <modality>/<method>, e.g. vision/simclr, got {key!r}; see `selfsup list`")
    mod_name, method = key.split("/")
    modality = get_modality(mod_name)
    if method in modality.recipes:
        return modality, modality.recipes[method]
    close = difflib.get_close_matches(method, list(modality.recipes), n=3)
    hint = f"; did you mean {', '.join(f'{mod_name}/{c}' for c in close)}?" if close else ""
    known = ", ".join(sorted(modality.recipes))
    raise ConfigError(f"unknown method {key!r}{hint} (methods of {mod_name}: {known})")

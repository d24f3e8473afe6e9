from importlib.metadata import EntryPoint

import pytest

from ssl_core import registry
from ssl_core.errors import ConfigError


def fake_entry_points(*eps):
    return lambda group: [e for e in eps if e.group == group]


def test_discovery_reports_broken_packages_without_hiding_others(monkeypatch):
    good = EntryPoint("toy", "ssl_core.testing.registry_fixture:modality", registry.GROUP)
    broken = EntryPoint("broken", "ssl_core.no_such_module:modality", registry.GROUP)
    wrong = EntryPoint("wrong", "ssl_core.testing.registry_fixture:not_a_modality", registry.GROUP)
    monkeypatch.setattr(registry, "entry_points", fake_entry_points(good, broken, wrong))
    d = registry.discover()
    assert list(d.modalities) == ["toy"]
    assert "ModuleNotFoundError" in d.failed["broken"] and "not an ssl_core Modality" in d.failed["wrong"]
    modality, recipe = registry.resolve("toy/tiny")
    assert recipe.name == "tiny"
    with pytest.raises(ConfigError, match=r"unknown method 'toy/tinny'; did you mean toy/tiny\?"):
        registry.resolve("toy/tinny")
    with pytest.raises(ConfigError, match="unknown modality 'audio'.*installed: toy"):
        registry.resolve("audio/wav2vec2")
    with pytest.raises(ConfigError, match="failed to load"):
        registry.resolve("broken/x")
    with pytest.raises(ConfigError, match="expected <modality>/<method>"):
        registry.resolve("simclr")

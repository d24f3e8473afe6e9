"""Fixtures of the core's tests: a tiny run of the toy modality, made by the real `selfsup pretrain` code."""

from importlib.metadata import EntryPoint

import pytest

from ssl_core import registry

TOY = EntryPoint("toy", "ssl_core.testing.registry_fixture:modality", registry.GROUP)
TOY_TRAIN = ["train.device=cpu", "train.progress=false", "train.batch_size=16", "train.checkpoint_every=1"]


@pytest.fixture
def toy_modality(monkeypatch):
    """Make ``toy/tiny`` (:mod:`ssl_core.testing.registry_fixture`) the only installed modality."""
    monkeypatch.setattr(registry, "entry_points", lambda group: [TOY] if group == registry.GROUP else [])


@pytest.fixture
def toy_run(toy_modality, tmp_path):
    """A run folder of ``toy/tiny`` pretrained for 3 steps, a checkpoint after each (the last 2 kept)."""
    from ssl_core.run import pretrain

    return pretrain("toy/tiny", out=tmp_path / "run", max_steps=3, overrides=TOY_TRAIN)

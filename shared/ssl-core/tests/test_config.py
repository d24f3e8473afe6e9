import pytest

from ssl_core.config import base_config, load_config, merge, save_config, to_run_config
from ssl_core.errors import ConfigError
from ssl_core.testing.registry_fixture import modality as MOD


def compose(*overrides, file=None):
    return to_run_config(merge(base_config(MOD, MOD.recipes["tiny"]), file=file, overrides=overrides))


def test_defaults_and_overrides_are_typed():
    c = compose()
    assert c.recipe == "toy/tiny" and c.train.lr == 0.5 and c.method.loss == "nt_xent"
    c = compose("train.lr=0.1", "method.use_ema=true", "train.max_steps=5", "data.path=/x", "train.betas=[0.8,0.9]")
    assert c.train.lr == 0.1 and c.method.use_ema is True and c.train.max_steps == 5 and c.data.path == "/x"
    assert list(c.train.betas) == [0.8, 0.9]


@pytest.mark.parametrize(
    "bad,msg",
    [
        ("train.lr", "expects key=value"),
        ("=3", "expects key=value"),
        ("lr=0.1", "keys start with one of"),
        ("recipe=vision/x", "keys start with one of"),
        ("train.lrr=0.1", "lrr"),
        ("train.lr=fast", "fast"),
        ("train.optimizer=adam", "optimizer must be one of"),
        ("train.batch_size=-1", "batch_size must be positive"),
    ],
)
def test_bad_overrides_name_the_problem(bad, msg):
    with pytest.raises(ConfigError, match=msg):
        compose(bad)


def test_file_layer_and_roundtrip(tmp_path):
    f = tmp_path / "recipe.yaml"
    f.write_text("train:\n  lr: 0.2\n  epochs: 4\nmethod:\n  dim: 6\n")
    tree = merge(base_config(MOD, MOD.recipes["tiny"]), file=f, overrides=["train.epochs=5"])
    c = to_run_config(tree)
    assert (c.train.lr, c.train.epochs, c.method.dim) == (0.2, 5, 6)  # the command line wins over the file
    save_config(tree, tmp_path / "run")
    again = to_run_config(load_config(tmp_path / "run", MOD, MOD.recipes["tiny"]))
    assert again == c
    with pytest.raises(ConfigError, match="not found"):
        compose(file=tmp_path / "missing.yaml")

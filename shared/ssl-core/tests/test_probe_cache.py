"""The probe cache: a row whose embeddings equal an earlier row's gets its scores without refitting."""

from pathlib import Path

import torch

from ssl_core.data import DataBundle, LabeledSplit
from ssl_core.eval import ProbeConfig, probe_table
from ssl_core.eval import embed as embed_module
from ssl_core.eval.cache import ProbeCache, cache_root, probe_key
from ssl_core.io import modality_cache


def _bundle(n=200, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    x = torch.randn(4, d, generator=g)[y] + 0.5 * torch.randn(n, d, generator=g)
    return DataBundle(
        train=list(x), info=None, description="toy", probe_train=LabeledSplit(x[:150], y[:150]),
        probe_test=LabeledSplit(x[150:], y[150:]),
    )  # fmt: skip


def _counting(monkeypatch):
    calls = []
    real = embed_module._score

    def score(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(embed_module, "_score", score)
    return calls


def test_a_row_with_the_same_embeddings_is_not_refitted(monkeypatch, tmp_path):
    monkeypatch.setenv("SELFSUP_CACHE_DIR", str(tmp_path))
    calls = _counting(monkeypatch)
    bundle, cfg = _bundle(), ProbeConfig()
    double = {"double": lambda b: 2 * b}
    first = probe_table(bundle, double, cfg)
    assert len(calls) == 2 and len(list((tmp_path / "probes").glob("*.json"))) == 2  # double, raw_input
    assert probe_table(bundle, double, cfg) == first and len(calls) == 2  # both from the cache
    probe_table(bundle, {"triple": lambda b: 3 * b + 1}, cfg)
    assert len(calls) == 3  # other embeddings are scored; the raw input again comes from the cache
    probe_table(bundle, double, ProbeConfig(cache=False))
    assert len(calls) == 5  # off: everything is scored
    probe_table(bundle, double, ProbeConfig(k=5))
    assert len(calls) == 7  # other settings are other keys


def test_the_key_covers_values_labels_shapes_settings_and_code(monkeypatch):
    x, y = torch.randn(10, 3), torch.arange(10) % 2
    base = probe_key(x, y, x, y, {"k": 20})
    assert probe_key(x.clone(), y.clone(), x, y, {"k": 20}) == base
    x2 = x.clone()
    x2[3, 1] = torch.nextafter(x2[3, 1], torch.tensor(10.0))  # one bit of one value
    assert probe_key(x2, y, x, y, {"k": 20}) != base
    assert probe_key(x, y.flip(0), x, y, {"k": 20}) != base
    assert probe_key(x.view(5, 6), y, x, y, {"k": 20}) != base
    assert probe_key(x.double(), y, x, y, {"k": 20}) != base
    assert probe_key(x, y, x, y, {"k": 5}) != base
    monkeypatch.setattr("ssl_core.eval.cache._probe_code", lambda: b"another probe")
    assert probe_key(x, y, x, y, {"k": 20}) != base


def test_cache_location_and_damaged_entries(monkeypatch, tmp_path):
    monkeypatch.setenv("SELFSUP_CACHE_DIR", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    monkeypatch.delenv("SELFSUP_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_root() == tmp_path / "x" / "selfsup"
    assert modality_cache("audio") == tmp_path / "x" / "selfsup" / "audio"
    assert modality_cache("audio", "~/mine") == Path("~/mine").expanduser()
    cache = ProbeCache(tmp_path / "p")
    assert cache.get("k") is None
    cache.put("k", {"knn_top1": 0.5})
    assert cache.get("k") == {"knn_top1": 0.5} and not list((tmp_path / "p").glob(".tmp-*"))
    (tmp_path / "p" / "k.json").write_text("{trunc")
    assert cache.get("k") is None  # a damaged entry is recomputed
    blocked = ProbeCache(tmp_path / "file")
    (tmp_path / "file").write_text("not a folder")
    blocked.put("k", {"knn_top1": 0.5})  # an unwritable cache is skipped
    assert blocked.get("k") is None


def test_an_untrained_network_is_found_by_its_state_without_embedding(monkeypatch, tmp_path):
    """A row given in ``fixed`` (the untrained network) is looked up by a digest of the inputs, the network's
    tensors and code: a later run with an equal network neither embeds nor fits; another network does both."""
    from torch import nn

    monkeypatch.setenv("SELFSUP_CACHE_DIR", str(tmp_path))
    calls = _counting(monkeypatch)
    bundle, cfg = _bundle(), ProbeConfig()
    bundle.raw_features = None

    def run(net):
        seen = []
        table = probe_table(bundle, {"untrained": lambda b: seen.append(1) or net(b)}, cfg, fixed={"untrained": net})
        return table, len(seen)

    torch.manual_seed(0)
    first, embedded = run(nn.Linear(6, 3))
    assert embedded > 0 and len(calls) == 1
    torch.manual_seed(0)
    again, embedded = run(nn.Linear(6, 3))  # equal weights: neither embedded nor fitted
    assert again == first and embedded == 0 and len(calls) == 1
    other = nn.Linear(6, 3)
    with torch.no_grad():
        other.weight[0, 0] += 1e-3
    _, embedded = run(other)
    assert embedded > 0 and len(calls) == 2
    monkeypatch.setattr("ssl_core.eval.cache._package_code", lambda module: b"changed code")
    torch.manual_seed(0)
    _, embedded = run(nn.Linear(6, 3))  # other code: the model key misses, the embeddings' key hits
    assert embedded > 0 and len(calls) == 2

"""Transformation recognition on the signal transformer: the pretext's copies, both objectives against naive
references, gradients to every backbone parameter, a falling loss on a fixed batch, the encoder's shapes and options,
and the export spec rebuilding the same encoder."""

import math

import pytest
import torch
import torch.nn.functional as F

from ssl_core.errors import ConfigError
from ssl_core.testing import fit_fixed_batch, pretext_batch, without_gradient
from ssl_medical.info import SignalInfo
from ssl_medical.methods.signal_transforms import SignalTransforms, SignalTransformsConfig
from ssl_medical.models.signal_transformer import (
    SignalTransformer,
    SignalTransformerConfig,
    build_signal_transformer,
    sinusoidal_positions,
)
from ssl_medical.transforms.signal import TRANSFORMS, SignalTransformConfig, apply_transform

INFO = SignalInfo(length=60, channels=1)
SMALL = {"patch_size": 6, "patch_stride": 3, "width": 32, "depth": 2, "heads": 2}


def small_method(info=INFO, **kw) -> SignalTransforms:
    backbone = {**SMALL, **kw.pop("backbone", {})}
    return SignalTransforms(SignalTransformsConfig(backbone=backbone, head_hidden=32, **kw), info)


def samples(n=8, length=60, channels=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 4 * torch.pi, length)
    out = torch.sin(t * (1 + torch.rand(n, 1, 1, generator=g))) + 0.1 * torch.randn(n, channels, length, generator=g)
    return list((out - out.mean(-1, keepdim=True)) / out.std(-1, keepdim=True))


def test_pretext_makes_the_original_then_each_transformation():
    m = small_method()
    x = samples(1)[0]
    torch.manual_seed(3)
    copies = m.pretext()(x)
    assert copies.shape == (1 + len(TRANSFORMS), 1, 60)
    torch.testing.assert_close(copies[0], x)
    cfg = SignalTransformConfig()
    torch.manual_seed(3)
    for i, name in enumerate(TRANSFORMS):
        torch.testing.assert_close(copies[1 + i], apply_transform(name, x, cfg))
    batch = pretext_batch(m, samples(4))
    assert batch.shape == (4, 7, 1, 60)


def test_binary_loss_equals_a_naive_per_task_reference():
    torch.manual_seed(0)
    m = small_method()
    batch = pretext_batch(m, samples(5))
    out = m(batch)
    logits = m.logits(batch)  # (B, 7, 6): every head on every copy
    assert logits.shape == (5, 7, 6)
    ref = 0.0
    for j in range(6):
        # head j: the original is negative, T_j(x) positive
        neg = F.binary_cross_entropy_with_logits(logits[:, 0, j], torch.zeros(5))
        pos = F.binary_cross_entropy_with_logits(logits[:, j + 1, j], torch.ones(5))
        ref = ref + (neg + pos) / 2
        torch.testing.assert_close(out.logs[f"bce_{TRANSFORMS[j]}"], (neg + pos) / 2)
    torch.testing.assert_close(out.loss, ref / 6)
    # each head's logits come from that head alone on the backbone's embedding of that copy
    emb = m.backbone(batch[:, 3])
    torch.testing.assert_close(logits[:, 3, 4], m.heads[4](emb)[:, 0], rtol=1e-5, atol=1e-6)
    # gradients equal the naive loss's
    grads = torch.autograd.grad(out.loss, list(m.parameters()))
    ref_grads = torch.autograd.grad(ref / 6, list(m.parameters()), allow_unused=True)
    for (name, _), g, r in zip(m.named_parameters(), grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, msg=name)


def test_softmax_loss_equals_a_naive_cross_entropy():
    torch.manual_seed(0)
    m = small_method(objective="softmax")
    batch = pretext_batch(m, samples(3))
    logits = m.logits(batch)
    assert logits.shape == (3, 7, 7)
    ref = sum(-torch.log_softmax(logits[b, c], 0)[c] for b in range(3) for c in range(7)) / 21
    torch.testing.assert_close(m(batch).loss, ref)


@pytest.mark.parametrize("objective", ["binary", "softmax"])
@pytest.mark.parametrize("backbone", [{}, {"pos": "learned", "pool": "cls"}])
def test_gradients_reach_every_backbone_parameter(objective, backbone):
    torch.manual_seed(0)
    m = small_method(objective=objective, backbone=backbone).train()
    m(pretext_batch(m, samples(4))).loss.backward()
    missing = without_gradient(m)
    assert not missing, f"no gradient for {missing}"
    assert sum(1 for n, _ in m.named_parameters() if n.startswith("backbone.")) > 0


@pytest.mark.parametrize("objective", ["binary", "softmax"])
def test_loss_falls_on_a_fixed_batch(objective):
    torch.manual_seed(0)
    m = small_method(objective=objective)
    batch = pretext_batch(m, samples(8))
    losses = fit_fixed_batch(m, batch, steps=40, lr=3e-3)
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:3]) / 3, losses


def test_embed_and_export_spec_rebuild_the_same_encoder():
    torch.manual_seed(0)
    m = small_method(info=SignalInfo(length=60, channels=3)).eval()
    x = torch.stack(samples(4, channels=3))
    emb = m.embed(x)
    assert emb.shape == (4, 32) and torch.isfinite(emb).all()
    spec = m.backbone_spec()
    assert spec.name == "signal_transformer" and spec.embed_dim == 32
    assert spec.config["in_channels"] == 3 and spec.config["length"] == 60
    assert spec.input["channels"] == 3 and spec.input["length"] == 60
    rebuilt = build_signal_transformer(spec.config)
    rebuilt.load_state_dict(m.backbone.state_dict(), strict=True)
    torch.testing.assert_close(rebuilt.eval()(x), emb)


def test_encoder_shapes_padding_positions_and_pooling():
    c = SignalTransformerConfig(in_channels=2, length=140, patch_size=10, patch_stride=5, width=16, depth=1, heads=2)
    assert c.num_tokens(140) == 27 and c.num_tokens(143) == 28 and c.num_tokens(4) == 1
    net = SignalTransformer(c).eval()
    for length in (140, 143, 4, 300):  # sinusoidal positions take any length
        assert net.tokens(torch.randn(3, 2, length)).shape == (3, c.num_tokens(length), 16)
        assert net(torch.randn(3, 2, length)).shape == (3, 16)
    # mean pooling = the mean of the tokens; a sample's embedding does not depend on the others in the batch
    x = torch.randn(4, 2, 140)
    torch.testing.assert_close(net(x), net.tokens(x).mean(1))
    torch.testing.assert_close(net(x[:1]), net(x)[:1], rtol=1e-5, atol=1e-6)
    table = sinusoidal_positions(5, 8)
    # Vaswani et al.: PE(p, 2i) = sin(p / 10000^(2i/d)), PE(p, 2i+1) = cos(p / 10000^(2i/d))
    ref = torch.tensor(
        [
            [math.sin(p / 10000 ** (c / 8)) if c % 2 == 0 else math.cos(p / 10000 ** ((c - 1) / 8)) for c in range(8)]
            for p in range(5)
        ]
    )
    torch.testing.assert_close(table, ref)
    learned = SignalTransformer(SignalTransformerConfig(length=140, pos="learned", pool="cls", width=16, heads=2))
    assert learned(torch.randn(2, 1, 100)).shape == (2, 16)
    with pytest.raises(ValueError, match="learned positions cover"):
        learned(torch.randn(2, 1, 300))
    with pytest.raises(ValueError, match=r"expected signals \(B, 2, L\)"):
        net(torch.randn(3, 1, 140))


def test_config_errors():
    with pytest.raises(ConfigError, match="objective"):
        small_method(objective="contrastive")
    with pytest.raises(ConfigError, match="heads"):
        SignalTransformerConfig(width=30, heads=4)
    with pytest.raises(ConfigError, match="pos"):
        SignalTransformerConfig(pos="rotary")
    m = small_method(transforms={"names": ["negate", "flip"]})
    batch = pretext_batch(m, samples(2))
    assert batch.shape == (2, 3, 1, 60) and m.logits(batch).shape == (2, 3, 2)
    with pytest.raises(ValueError, match=r"\(B, 3, C, L\)"):
        m(torch.zeros(2, 7, 1, 60))


def test_a_short_run_through_the_core_trains_probes_and_exports(tmp_path, monkeypatch):
    """The recipe end to end on ECG200 (3 steps): the core's trainer, the probe table with the nn1_euclid column,
    and the export's backbone.json (a stand-in modality: the real one is registered in ssl_medical.modality)."""
    import json

    import ssl_core.run as run_module
    from ssl_core.modality import Modality, Recipe
    from ssl_core.train.config import TrainConfig
    from ssl_medical.data.config import MedicalDataConfig
    from ssl_medical.data.signals import load_signal_data

    recipe = Recipe(
        name="signal_transforms",
        method=SignalTransforms,
        config=SignalTransformsConfig(backbone=SMALL, head_hidden=16),
        summary="transformation recognition",
        train=TrainConfig(epochs=1, max_steps=3, batch_size=16, lr=1e-3, threads=1, progress=False),
        data=MedicalDataConfig(path="ucr:ECG200"),
    )
    modality = Modality(
        name="medical",
        summary="",
        data_config=MedicalDataConfig(),
        load_data=load_signal_data,
        recipes={"signal_transforms": recipe},
        backbones={"signal_transformer": build_signal_transformer},
    )
    monkeypatch.setattr(run_module, "resolve", lambda key: (modality, recipe))
    monkeypatch.setattr(run_module, "plot_test_embeddings", lambda *a, **k: None)  # t-SNE: 9 s, not ours to test
    run = run_module.pretrain("medical/signal_transforms", out=tmp_path / "run", runs_root=tmp_path)
    table = json.loads((run / "metrics.json").read_text())
    assert set(table) >= {"pretrained", "random_init", "raw_input"}
    assert all(0 <= row["nn1_euclid"] <= 1 and 0 <= row["knn_top1"] <= 1 for row in table.values())
    spec = json.loads((run / "backbone.json").read_text())
    assert spec["name"] == "signal_transformer" and spec["config"]["length"] == 96

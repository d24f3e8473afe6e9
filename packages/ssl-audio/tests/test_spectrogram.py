"""Spectrogram backbones and methods: shapes, gradients, falling fixed-batch loss, MAE mask share, ATST's
masked-frame loss, Bird-MAE's prototypical probe column."""

from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_model

from ssl_audio.data.prototypes import prototypical_column
from ssl_audio.frontend import standardize
from ssl_audio.info import AudioInfo
from ssl_audio.methods.atst import ATST, ATSTConfig
from ssl_audio.methods.audio_mae import AudioMAE, AudioMAEConfig
from ssl_audio.methods.byol_a import BYOLA, BYOLAConfig
from ssl_audio.models.spectrogram import (
    BYOLACNN,
    BYOLACNNConfig,
    SpectrogramViT,
    SpecViTConfig,
    build_byola_cnn,
    build_spec_vit,
    spec_backbone_spec,
)
from ssl_core.data import LabeledSplit
from ssl_core.testing import fit_fixed_batch, pretext_batch, torch_threads, without_gradient

INFO = AudioInfo()


@pytest.fixture(autouse=True)
def one_thread():
    # these models are small enough that one thread is about as fast (and far faster on shared cores)
    with torch_threads(1):
        yield


SMALL_VIT = {"dim": 32, "depth": 2, "heads": 2}


def waves(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(16_000, generator=g) * 0.1 for _ in range(n)]


def methods():
    return {
        "audio_mae": lambda: AudioMAE(AudioMAEConfig(backbone=SpecViTConfig(**SMALL_VIT), decoder_dim=32), INFO),
        "atst_frame": lambda: ATST(ATSTConfig(backbone=SpecViTConfig(patch_mels=64, **SMALL_VIT)), INFO),
        "atst_both": lambda: ATST(
            ATSTConfig(backbone=SpecViTConfig(patch_mels=64, **SMALL_VIT), objective="both", proj_hidden_dim=64), INFO
        ),
        "byol_a": lambda: BYOLA(BYOLAConfig(backbone=BYOLACNNConfig(channels=8, dim=32), proj_hidden_dim=64), INFO),
    }


def test_backbones_follow_the_protocol_and_rebuild(tmp_path):
    w = torch.stack(waves(3))
    for net, build, frames in (
        (SpectrogramViT(SpecViTConfig(**SMALL_VIT)), build_spec_vit, 25),
        (BYOLACNN(BYOLACNNConfig(channels=8, dim=32)), build_byola_cnn, 12),
    ):
        net.eval()
        assert net(w).shape == (3, net.embed_dim)
        assert net.frames(w).shape == (3, frames, net.embed_dim)
        assert abs(net.frame_rate - frames) <= 0.5  # 1-second clips
        rebuilt = build(spec_backbone_spec(net).config).eval()  # the export's builder, from the spec's config
        rebuilt.load_state_dict(net.state_dict())
        torch.testing.assert_close(rebuilt(w), net(w))
        save_model(net, str(tmp_path / "w.safetensors"))  # checkpoints: no buffer is a view (the Hann window)
    vit = SpectrogramViT(SpecViTConfig(**SMALL_VIT))
    assert vit.patch_tokens(w).shape == (3, 100, 32)
    spec = vit.spectrogram(w)
    assert spec.shape == (3, 64, 100)
    # patchify: token t * n_freq + f holds mels [16 f, 16 f + 16) of frames [4 t, 4 t + 4)
    p = vit.patchify(spec)
    torch.testing.assert_close(p[:, 7 * 4 + 2], spec[:, 32:48, 28:32].flatten(1))
    spec_cfg = AudioMAE(AudioMAEConfig(backbone=SpecViTConfig(**SMALL_VIT)), INFO).backbone_spec()
    assert spec_cfg.name == "spec_vit" and spec_cfg.embed_dim == 32 and spec_cfg.input["num_samples"] == 16_000


@pytest.mark.parametrize("name", sorted(methods()))
def test_gradients_embed_and_fixed_batch_fit(name):
    torch.manual_seed(0)
    method = methods()[name]()
    batch = pretext_batch(method, waves(6))
    out = method(batch)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    missing = without_gradient(method.backbone, nonzero=False)
    assert not missing, f"no gradient reaches {missing}"
    method.eval()
    emb = method.embed(torch.stack(waves(5, seed=1)))
    assert emb.shape == (5, method.backbone_spec().embed_dim) and torch.isfinite(emb).all()
    method.train()
    method.zero_grad()
    losses = fit_fixed_batch(method, batch, 12, lr=3e-3, optimizer="adam", values={"ema_momentum": 0.9}, reseed=2)
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4, losses


def test_mae_masks_keep_exactly_the_configured_share():
    torch.manual_seed(0)
    method = AudioMAE(AudioMAEConfig(backbone=SpecViTConfig(**SMALL_VIT), mask_ratio=0.8), INFO)
    batch = pretext_batch(method, waves(6))
    assert method.num_patches == 100
    assert batch["mask"].shape == (6, 100) and (batch["mask"].sum(1) == 80).all()
    assert batch["ids_keep"].shape == (6, 20)
    # the kept ids are exactly the unmasked positions
    for m, keep in zip(batch["mask"], batch["ids_keep"], strict=True):
        assert set(keep.tolist()) == set((~m).nonzero().flatten().tolist())
    out = method(batch)
    assert abs(float(out.logs["mask_ratio"]) - 0.8) < 1e-6


def test_atst_frame_loss_only_on_masked_frames():
    torch.manual_seed(0)
    method = ATST(ATSTConfig(backbone=SpecViTConfig(patch_mels=64, **SMALL_VIT), proj_hidden_dim=64), INFO)
    method.eval()  # BatchNorm statistics of the heads do not couple frames in eval mode
    spec = method.backbone.spectrogram(torch.stack(waves(2)))
    mask = torch.zeros(4, 25, dtype=torch.bool)
    mask[:, 3:6] = True
    mask[1, 10] = True
    # per-frame predictions and targets; the loss must equal the mean over the masked frames only
    torch.manual_seed(1)
    loss = method.frame_loss(spec, mask)
    torch.manual_seed(1)
    x = torch.cat([standardize(method.frame_rrc(method.mixup(spec))) for _ in range(2)])
    p = method.frame_predictor(method.frame_projector(method.student_frames(x, mask).flatten(0, 1))).view(4, 25, -1)
    t = method.target.module
    z = t["frame_projector"](t["backbone"].frames_of_tokens(t["backbone"].tokens_spec(x)).flatten(0, 1))
    z = z.view(2, 2, 25, -1).flip(0).reshape(4, 25, -1)
    cos = torch.nn.functional.cosine_similarity(p, z, dim=-1)  # (4, 25)
    ref = 2 * (2 - 2 * cos[mask].mean())
    torch.testing.assert_close(loss, ref)
    # the student never sees a masked frame: changing only masked frames changes no output
    x2 = x.clone()
    x2[:, :, 12:24] += 5.0  # spectrogram frames 12..23 are frame tokens 3..5, masked in every view
    torch.testing.assert_close(method.student_frames(x, mask), method.student_frames(x2, mask))
    assert not torch.allclose(method.student_frames(x, ~mask), method.student_frames(x2, ~mask))
    assert method.frame_mask(64, 25).float().mean() > 0.3


def test_atst_target_follows_the_student():
    method = ATST(ATSTConfig(backbone=SpecViTConfig(patch_mels=64, **SMALL_VIT), proj_hidden_dim=64), INFO)
    with torch.no_grad():
        for p in method.backbone.parameters():
            p.add_(1.0)
    before = [p.clone() for p in method.target.module["backbone"].parameters()]
    method.after_optimizer_step(0, {"ema_momentum": 0.75})
    for b, t, s in zip(
        before, method.target.module["backbone"].parameters(), method.backbone.parameters(), strict=True
    ):
        torch.testing.assert_close(t, 0.75 * b + 0.25 * s)


def test_prototypical_column_scores_vits_only():
    g = torch.Generator().manual_seed(0)
    # two classes: a 440 Hz tone and noise
    t = torch.arange(16_000) / 16_000
    tone = [0.3 * torch.sin(2 * torch.pi * (440 + 20 * k) * t) for k in range(10)]
    noise = [0.1 * torch.randn(16_000, generator=g) for _ in range(10)]
    inputs = tone[:6] + noise[:6]
    labels = torch.tensor([0] * 6 + [1] * 6)
    bundle = SimpleNamespace(
        probe_train=LabeledSplit(inputs, labels, ["tone", "noise"]),
        probe_test=LabeledSplit(tone[6:] + noise[6:], torch.tensor([0] * 4 + [1] * 4), ["tone", "noise"]),
        collate_fn=None,
    )
    probe = prototypical_column(bundle, prototypes_per_class=2, steps=30, batch_size=None)
    vit = SpectrogramViT(SpecViTConfig(**SMALL_VIT))
    score = probe("random_init", vit, "cpu", vit)
    assert 0.0 <= score <= 1.0 and score >= 0.75
    assert probe("raw_input", None, "cpu", None) is None
    assert probe("pretrained", None, "cpu", BYOLACNN(BYOLACNNConfig(channels=8, dim=16))) is None

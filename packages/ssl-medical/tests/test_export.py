"""The MONAI export: a MonaiBackbone goes through the core's export path, MONAI loads the network strictly and it
reproduces our features (UNet: the forward output and the down path; SwinUNETR: the swinViT hidden states)."""

import json

import pytest
import torch
from safetensors.torch import save_file

import ssl_core.export
from ssl_core.errors import CheckpointError
from ssl_core.export import export_backbone, load_backbone
from ssl_core.modality import Modality
from ssl_medical.export import export_extra, load_monai
from ssl_medical.models.monai_nets import MonaiBackbone, build_monai_backbone, swinunetr_kwargs, unet_kwargs

TINY = {
    "UNet": unet_kwargs(channels=(4, 8, 16), strides=(2, 2)),
    "SwinUNETR": swinunetr_kwargs(feature_size=12, depths=(1, 1, 1, 1), num_heads=(3, 3, 3, 3)),
}


@pytest.fixture
def medical(monkeypatch):
    """The core's export sees a modality with the MONAI backbone builder and this package's export_extra (what
    ssl_medical.modality registers)."""
    modality = Modality(
        name="medical",
        summary="test",
        data_config=None,
        load_data=lambda cfg: None,
        recipes={},
        backbones={"monai": build_monai_backbone},
        export_extra=export_extra,
    )
    monkeypatch.setattr(ssl_core.export, "get_modality", lambda name: modality)
    return modality


def _run_folder(tmp_path, backbone: MonaiBackbone):
    """A run folder as ``selfsup pretrain`` leaves it: backbone.json and a checkpoint of the method's weights."""
    run = tmp_path / "run"
    ckpt = run / "checkpoints" / "step_00000010"
    ckpt.mkdir(parents=True)
    spec = {
        "modality": "medical",
        "name": "monai",
        "config": backbone.config(),
        "embed_dim": backbone.embed_dim,
        "input": {"patch_size": [32, 32, 32]},
        "recipe": "medical/test",
    }
    (run / "backbone.json").write_text(json.dumps(spec))
    state = {f"backbone.{k}": v.contiguous() for k, v in backbone.state_dict().items()}
    state["head.weight"] = torch.zeros(2)  # method weights that are not the backbone's
    save_file(state, str(ckpt / "model.safetensors"))
    return run


@pytest.mark.parametrize("cls", ["UNet", "SwinUNETR"])
def test_export_through_core_reproduces_features(tmp_path, medical, cls):
    torch.manual_seed(0)
    bb = MonaiBackbone(cls, TINY[cls]).eval()
    out = export_backbone(_run_folder(tmp_path, bb), tmp_path / "export")
    assert sorted(p.name for p in (out / "monai").iterdir()) == ["config.json", "model.pt"]
    cfg = json.loads((out / "monai" / "config.json").read_text())
    assert cfg["class"] == f"monai.networks.nets.{cls}" and cfg["kwargs"] == bb.config()["kwargs"]
    net = load_monai(out)
    assert type(net).__name__ == cls and not net.training
    # plain torch + MONAI, as a MONAI user does it
    import monai.networks.nets as nets

    again = getattr(nets, cls)(**cfg["kwargs"])
    again.load_state_dict(torch.load(out / "monai" / "model.pt", weights_only=True), strict=True)
    ours = load_backbone(out)  # the core's own export loads too
    size = 64 if cls == "SwinUNETR" else 32  # the full SwinUNETR needs 64^3
    x = torch.rand(1 if cls == "SwinUNETR" else 2, 1, size, size, size)
    with torch.no_grad():
        want = bb.features(x)
        torch.testing.assert_close(net(x), bb.net(x), atol=1e-5, rtol=0)
        torch.testing.assert_close(ours(x), bb(x), atol=1e-5, rtol=0)
        if cls == "SwinUNETR":
            got = list(net.swinViT(x, True))
        else:
            got, h = [], x
            m = net.model
            for _ in range(2):  # the down path, walked by hand: Sequential(down, SkipConnection(...), up)
                h = m[0](h)
                got.append(h)
                m = m[1].submodule
            got.append(m(h))
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_export_extra_replaces_and_skips_others(tmp_path):
    torch.manual_seed(0)
    bb = MonaiBackbone("UNet", TINY["UNet"])
    assert export_extra(torch.nn.Linear(2, 2), {}, tmp_path) is None
    assert not (tmp_path / "monai").exists()
    export_extra(bb, {"recipe": "medical/a"}, tmp_path)
    with torch.no_grad():
        for p in bb.parameters():
            p.add_(1.0)
    folder = export_extra(bb, {"recipe": "medical/b"}, tmp_path)  # a second export replaces the first
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.pt"]
    net = load_monai(folder)  # the monai/ folder itself is accepted too
    for k, v in bb.net.state_dict().items():
        assert torch.equal(net.state_dict()[k], v)
    assert json.loads((folder / "config.json").read_text())["recipe"] == "medical/b"


def test_load_monai_errors(tmp_path):
    with pytest.raises(CheckpointError, match="holds no MONAI network"):
        load_monai(tmp_path)
    torch.manual_seed(0)
    folder = export_extra(MonaiBackbone("UNet", TINY["UNet"]), {}, tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["kwargs"]["channels"] = [4, 8, 32]
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_monai(tmp_path)
    cfg["class"] = "os.system"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="not a class of monai.networks.nets"):
        load_monai(tmp_path)

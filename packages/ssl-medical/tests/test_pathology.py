"""Pathology tiles and the MoCo v2 + HED jitter method: the IHC loader and its identification probe, user tile
folders and their errors, the views, gradients to every backbone parameter, a falling fixed-batch loss."""

import numpy as np
import pytest
import torch
from PIL import Image

from ssl_core.errors import ConfigError, DataError
from ssl_core.testing import fit_fixed_batch, pretext_batch, without_gradient
from ssl_medical.data.config import MedicalDataConfig
from ssl_medical.data.tiles import dihedral, load_tile_data, pooled_pixels, stain_stats
from ssl_medical.info import TileInfo
from ssl_medical.methods.pathology import PathologyMoCo, PathologyMoCoConfig, tile_views
from ssl_medical.transforms.stain import rgb_to_hed
from ssl_vision.models.resnet import ResNetConfig

INFO = TileInfo(size=32)


def small_method(**kw) -> PathologyMoCo:
    backbone = ResNetConfig(width=8, small_stem=False, pool="avg")
    cfg = PathologyMoCoConfig(backbone=backbone, proj_hidden_dim=32, proj_dim=16, queue_size=32, **kw)
    return PathologyMoCo(cfg, INFO)


def tiles(n=8, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(3, size, size, generator=g) * 0.6 + 0.3 for _ in range(n)]


# ------------------------------------------------------------------------------------------------ IHC data


@pytest.fixture(scope="module")
def ihc_bundle():
    return load_tile_data(MedicalDataConfig(path="pathology", tile_size=32, probe_tiles=6, probe_variants=3))


def test_ihc_bundle_tiles_and_probe(ihc_bundle):
    b = ihc_bundle
    assert b.info == TileInfo(size=32) and len(b.train) == 2048
    torch.manual_seed(0)
    t = b.train[0]
    assert t.shape == (3, 32, 32) and t.dtype == torch.float32 and 0 <= t.min() and t.max() <= 1
    tr, te = b.probe_train, b.probe_test
    assert tr.inputs.shape == te.inputs.shape == (18, 3, 32, 32)
    assert tr.labels.tolist() == te.labels.tolist() == [c for c in range(6) for _ in range(3)]
    assert len(tr.class_names) == 6 and 0 <= tr.inputs.min() and tr.inputs.max() <= 1
    assert not torch.equal(tr.inputs, te.inputs)  # independent variants
    # the same seed gives the same probe, another seed another one
    again = load_tile_data(MedicalDataConfig(path="pathology", tile_size=32, probe_tiles=6, probe_variants=3))
    torch.testing.assert_close(again.probe_test.inputs, te.inputs)
    assert b.raw_features(tr.inputs).shape == (18, 3 * 8 * 8)
    assert set(b.extra_baselines) == {"stain_stats"}


def test_pretraining_never_sees_the_held_out_strip(ihc_bundle):
    """Training tiles come from columns [0, width) only: the IHC bundle's width is 512 - 2 x 32, and on an image
    whose first channel holds each pixel's column, no tile holds a column at or past it."""
    from ssl_medical.data.tiles import RandomTiles

    assert ihc_bundle.train.width == 448
    col = torch.arange(200, dtype=torch.uint8).expand(40, 200)
    img = torch.stack([col, torch.zeros_like(col), torch.zeros_like(col)])
    ds = RandomTiles([img], 16, 500, width=100)
    torch.manual_seed(0)
    seen = torch.stack([ds[i][0] for i in range(500)]) * 255
    assert seen.max().round() == 99 and seen.min() == 0


def test_dihedral_gives_the_8_symmetries():
    x = torch.arange(9.0).view(1, 3, 3)
    outs = {tuple(dihedral(x, k).flatten().tolist()) for k in range(8)}
    assert len(outs) == 8


def test_baselines():
    x = torch.rand(5, 3, 16, 16)
    torch.testing.assert_close(pooled_pixels(x)[:, 0], x[:, 0, :4, :4].mean(dim=(1, 2)))
    s = stain_stats(x)
    assert s.shape == (5, 12)
    torch.testing.assert_close(s[:, 3], rgb_to_hed(x)[:, 0].mean(dim=(1, 2)))
    torch.testing.assert_close(s[:, 6], x[:, 0].std(dim=(1, 2)))


def test_probe_config_errors():
    with pytest.raises(ConfigError, match="probe_tiles"):
        load_tile_data(MedicalDataConfig(path="pathology", probe_tiles=40))
    with pytest.raises(ConfigError, match="tile_size"):
        load_tile_data(MedicalDataConfig(path="pathology", tile_size=4))


# ------------------------------------------------------------------------------------------------ user folders


def write_tile(path, size=40, seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    arr = (rng.random((size, size, 3)) * 255).astype(np.uint8)
    img = Image.fromarray(arr)
    if mode != "RGB":
        img = img.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def test_labelled_folder(tmp_path):
    for c in ("tumour", "stroma"):
        for i in range(5):
            write_tile(tmp_path / c / f"t{i}.png", seed=i + 10 * len(c))
    write_tile(tmp_path / "loose.jpg", seed=99)  # unlabelled: pretraining only
    write_tile(tmp_path / "grey" / "g.tif", mode="L")  # a third class, greyscale TIFF
    b = load_tile_data(MedicalDataConfig(path=str(tmp_path), tile_size=32))
    assert len(b.train) == 12 and b.train[3].shape == (3, 32, 32)
    tr, te = b.probe_train, b.probe_test
    assert tr.class_names == ["grey", "stroma", "tumour"]
    assert len(tr.labels) + len(te.labels) == 11 and set(te.labels.tolist()) == {1, 2}
    x = te.inputs[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and x.max() <= 1
    # centre crop of the file
    path = te.inputs.paths[0]
    full = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(x, full[:, 4:36, 4:36])


def test_flat_folder_is_unlabelled(tmp_path):
    for i in range(3):
        write_tile(tmp_path / f"{i}.png", seed=i)
    b = load_tile_data(MedicalDataConfig(path=str(tmp_path), tile_size=32))
    assert b.probe_train is None and b.probe_test is None and len(b.train) == 3
    assert "no probes" in b.description


def test_bad_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no tile images"):
        load_tile_data(MedicalDataConfig(path=str(tmp_path / "empty")))
    bad = tmp_path / "bad"
    write_tile(bad / "ok.png", size=64)
    (bad / "broken.png").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"cannot read the tile image .*broken\.png"):
        load_tile_data(MedicalDataConfig(path=str(bad)))
    small = tmp_path / "small"
    write_tile(small / "tiny.png", size=20)
    with pytest.raises(DataError, match=r"tiny\.png is 20x20 pixels, smaller than the tile size 64"):
        load_tile_data(MedicalDataConfig(path=str(small)))
    one = tmp_path / "one"
    write_tile(one / "a" / "x.png")
    with pytest.raises(DataError, match="single class"):
        load_tile_data(MedicalDataConfig(path=str(one), tile_size=32))
    with pytest.raises(DataError, match="not a folder"):
        load_tile_data(MedicalDataConfig(path=str(tmp_path / "missing")))


# ------------------------------------------------------------------------------------------------ the method


def test_views_shapes_range_and_stain_jitter():
    torch.manual_seed(0)
    m = small_method()
    q, k = pretext_batch(m, tiles(6))
    assert q.shape == k.shape == (6, 3, 32, 32) and q.dtype == torch.float32
    assert 0 <= q.min() and q.max() <= 1 and not torch.equal(q, k)
    # without any augmentation but the stain jitter, a view is the jittered tile (to 8 bits)
    plain = tile_views()
    plain.crop_scale, plain.hflip, plain.jitter_prob, plain.grayscale_prob = [1.0, 1.0], 0.0, 0.0, 0.0
    plain.crop_ratio = [1.0, 1.0]
    m = small_method(views=plain, rot90=False, stain_sigma=0.0, stain_bias=0.0)
    x = tiles(3)
    q, k = pretext_batch(m, x)
    torch.testing.assert_close(q, torch.stack(x), atol=0.5 / 255 + 1e-6, rtol=0)
    m = small_method(views=plain, rot90=False, stain_sigma=0.3, stain_bias=0.05)
    q, k = pretext_batch(m, x)
    assert (q - torch.stack(x)).abs().mean() > 0.01 and (q - k).abs().mean() > 0.01


def test_gradients_reach_every_backbone_parameter_and_embed():
    torch.manual_seed(0)
    m = small_method().train()
    from ssl_core.testing import begin_step

    begin_step(m)
    m(pretext_batch(m, tiles(8))).loss.backward()
    missing = without_gradient(m)
    assert not missing, f"no gradient for {missing}"
    assert sum(1 for n, _ in m.named_parameters() if n.startswith("backbone.")) > 0
    m.eval()
    x = torch.stack(tiles(3))
    emb = m.embed(x)
    assert emb.shape == (3, m.backbone.embed_dim) == (3, 64) and torch.isfinite(emb).all()
    spec = m.backbone_spec()
    assert spec.name == "resnet" and spec.embed_dim == 64 and spec.input["size"] == 32
    from ssl_vision.methods.common import build_resnet

    rebuilt = build_resnet(spec.config)
    rebuilt.load_state_dict(m.backbone.state_dict())
    torch.testing.assert_close(rebuilt.eval()(x), emb)


def test_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    m = small_method()
    batch = pretext_batch(m, tiles(16))
    losses = fit_fixed_batch(m, batch, steps=30, lr=3e-3)
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:3]) / 3, losses


def test_method_config_errors():
    with pytest.raises(ConfigError, match="TileInfo"):
        PathologyMoCo(PathologyMoCoConfig(), object())
    with pytest.raises(ConfigError, match="stain_sigma"):
        small_method(stain_sigma=-0.1)

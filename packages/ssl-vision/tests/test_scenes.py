import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssl_core.errors import ConfigError
from ssl_vision.data import images as images_module
from ssl_vision.data import scenes
from ssl_vision.data.scenes import IGNORE, SceneConfig, render_scene, scene_objects, solve_homography

CFG = SceneConfig()
INDICES = range(12)


@pytest.fixture(scope="module")
def pool():
    return scene_objects("train")


def reference_layout(d, objects, cfg, skip=None):
    """Naive re-composition: resize each placed object with F.interpolate, threshold, paint in order."""
    s = cfg.canvas
    labels = torch.zeros(s, s, dtype=torch.long)
    canvas = torch.zeros(s, s)
    masks = []
    for k, (obj, (top, left, size)) in enumerate(zip(d["object_ids"].tolist(), d["boxes"].tolist(), strict=True)):
        pix = objects.images[obj].float()[None, None] / 255
        if size != 28:
            pix = F.interpolate(pix, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        pix = pix[0, 0]
        mask = pix > cfg.mask_threshold / 255
        full = torch.zeros(s, s, dtype=torch.bool)
        full[top : top + size, left : left + size] = mask
        masks.append(full)
        if k + 1 == skip:
            continue
        labels[full] = 1 + int(objects.labels[obj])
        canvas[top : top + size, left : left + size][mask] = pix[mask]
    return labels, canvas, masks


def view2_coordinates(d):
    """For every view-2 pixel centre p = (x, y), the view-1 point H^-1 p (a per-pixel loop)."""
    s = d["labels"].shape[0]
    h_inv = np.linalg.inv(d["homography"].double().numpy())
    q = np.zeros((s, s, 2))
    for y in range(s):
        for x in range(s):
            v = h_inv @ np.array([x, y, 1.0])
            q[y, x] = v[:2] / v[2]
    return q


def bilinear(img, x, y):
    """Bilinear sample of img (S, S) at (x, y), zero outside."""
    s = img.shape[0]
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    out = 0.0
    for dy in (0, 1):
        for dx in (0, 1):
            xx, yy = x0 + dx, y0 + dy
            w = (1 - abs(x - xx)) * (1 - abs(y - yy))
            if 0 <= xx < s and 0 <= yy < s:
                out += w * img[yy, xx]
    return out


def test_shapes_and_dtypes(pool):
    d = render_scene(0, CFG, pool)
    s = CFG.canvas
    for key in ("image", "view2", "after", "background"):
        assert d[key].shape == (1, s, s) and d[key].dtype == torch.uint8, key
    assert d["labels"].shape == (s, s) and d["labels"].dtype == torch.int64
    assert d["labels2"].shape == (s, s) and d["labels2"].dtype == torch.int64
    assert d["valid2"].shape == (s, s) and d["valid2"].dtype == torch.bool
    assert d["homography"].shape == (3, 3) and d["homography"].dtype == torch.float32
    assert d["removed"].shape == (1, 28, 28) and d["removed"].dtype == torch.uint8
    assert d["removed_class"].dtype == torch.int64 and d["removed_class"].ndim == 0
    assert d["present"].shape == (10,) and d["present"].dtype == torch.float32
    fast = render_scene(0, CFG, pool, views=False)
    assert "view2" not in fast and torch.equal(fast["image"], d["image"]) and torch.equal(fast["labels"], d["labels"])


def test_deterministic_per_seed_split_index(pool):
    a = render_scene(5, CFG, pool, "styled")
    torch.manual_seed(123)  # the global generator plays no part
    b = render_scene(5, CFG, pool, "styled")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert not torch.equal(render_scene(6, CFG, pool)["image"], a["image"])
    assert not torch.equal(render_scene(5, CFG, pool, seed=1)["image"], render_scene(5, CFG, pool)["image"])
    test = render_scene(5, CFG, scene_objects("test"))
    assert not torch.equal(test["image"], render_scene(5, CFG, pool)["image"])
    # the style changes the look, not the layout / homography / photometric change
    clean = render_scene(5, CFG, pool, "clean")
    for k in ("labels", "labels2", "valid2", "homography", "photometric", "object_ids", "boxes", "removed"):
        assert torch.equal(clean[k], a[k]), k
    assert not torch.equal(clean["image"], a["image"])


def test_label_maps_match_a_naive_recomposition(pool):
    for i in INDICES:
        d = render_scene(i, CFG, pool)
        n = len(d["object_ids"])
        assert CFG.min_objects <= n <= CFG.max_objects or n >= 1
        labels, canvas, masks = reference_layout(d, pool, CFG)
        assert torch.equal(d["labels"], labels)
        assert torch.equal((d["instances"] > 0), labels > 0)
        # clean: black background, object pixels are the resized objects
        image = d["image"][0].float() / 255
        assert (image[labels == 0] == 0).all() and (image[labels > 0] > 0).all()
        assert (image - canvas).abs().max() <= 0.5 / 255 + 1e-6
        # each instance carries its object's class; present = classes with visible pixels
        for k, obj in enumerate(d["object_ids"].tolist()):
            sel = d["instances"] == k + 1
            assert (d["labels"][sel] == 1 + pool.labels[obj]).all()
            # limited overlap: at least 1 - max_overlap of every object stays visible
            assert sel.sum() >= (1 - CFG.max_overlap) * masks[k].sum() - 1
        expected = torch.zeros(10)
        expected[(labels[labels > 0] - 1).unique()] = 1
        assert torch.equal(d["present"], expected)
        assert ((d["labels"] >= 0) & (d["labels"] <= 10)).all()


def test_homography_moves_corners_within_the_jitter(pool):
    s = CFG.canvas
    for i in INDICES:
        h = render_scene(i, CFG, pool)["homography"].double()
        c = torch.tensor([[-0.5, -0.5], [s - 0.5, -0.5], [s - 0.5, s - 0.5], [-0.5, s - 0.5]], dtype=torch.float64)
        moved = scenes.apply_homography(h, c)
        assert (moved - c).abs().max() <= CFG.homography_jitter * s + 1e-3
        assert torch.allclose(solve_homography(c, moved), h, atol=1e-5)
    # the DLT solve against a known homography
    h_true = torch.tensor([[1.1, 0.05, 2.0], [-0.03, 0.95, -1.0], [1e-3, -2e-3, 1.0]], dtype=torch.float64)
    src = torch.tensor([[0.0, 0.0], [10.0, 1.0], [12.0, 9.0], [-1.0, 11.0]], dtype=torch.float64)
    assert torch.allclose(solve_homography(src, scenes.apply_homography(h_true, src)), h_true, atol=1e-9)


def test_view2_labels_are_view1_labels_warped_by_the_homography(pool):
    s = CFG.canvas
    for i in range(6):
        d = render_scene(i, CFG, pool)
        q = view2_coordinates(d)
        valid = ((q >= -0.5) & (q < s - 0.5)).all(-1)
        assert (torch.from_numpy(valid) == d["valid2"]).float().mean() >= 0.995
        assert d["valid2"].float().mean() > 0.5
        assert (d["labels2"][~d["valid2"]] == IGNORE).all() and (d["labels2"][d["valid2"]] != IGNORE).all()
        labels1 = d["labels"].numpy()
        # a view-1 label map whose 3x3 neighbourhood is constant: "away from object borders"
        pad = np.pad(labels1, 1, mode="edge")
        flat = np.ones_like(labels1, dtype=bool)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                flat &= pad[1 + dy : 1 + dy + s, 1 + dx : 1 + dx + s] == labels1
        agree, total, interior_bad = 0, 0, 0
        for y in range(s):
            for x in range(s):
                if not (valid[y, x] and d["valid2"][y, x]):
                    continue
                qx, qy = int(np.clip(np.rint(q[y, x, 0]), 0, s - 1)), int(np.clip(np.rint(q[y, x, 1]), 0, s - 1))
                ok = labels1[qy, qx] == int(d["labels2"][y, x])
                agree += ok
                total += 1
                interior_bad += (not ok) and flat[qy, qx]
        assert agree / total >= 0.99 and interior_bad == 0
        # forward: view-1 pixels away from borders land on view-2 pixels with their label
        h = d["homography"].double().numpy()
        for y in range(0, s, 3):
            for x in range(0, s, 3):
                if not flat[y, x]:
                    continue
                v = h @ np.array([x, y, 1.0])
                u2, v2 = int(np.rint(v[0] / v[2])), int(np.rint(v[1] / v[2]))
                if 0 <= u2 < s and 0 <= v2 < s and d["valid2"][v2, u2]:
                    assert int(d["labels2"][v2, u2]) == labels1[y, x]


def test_view2_intensities_are_view1_warped_then_photometrically_changed(pool):
    s = CFG.canvas
    for i, style in ((0, "clean"), (1, "styled"), (2, "styled")):
        d = render_scene(i, CFG, pool, style)
        c, b = d["photometric"].tolist()
        assert 1 - CFG.contrast <= c <= 1 + CFG.contrast and abs(b) <= CFG.brightness
        q = view2_coordinates(d)
        img1 = d["image"][0].double().numpy() / 255
        v2 = d["view2"][0].double().numpy() / 255
        checked = 0
        for y in range(s):
            for x in range(s):
                qx, qy = q[y, x]
                if not (0 <= qx <= s - 1 and 0 <= qy <= s - 1) or not 0 < v2[y, x] < 1:
                    continue
                expect = bilinear(img1, qx, qy)
                assert abs((v2[y, x] - b) / c - expect) <= (0.5 / 255 + 1e-4) / c + 1e-4
                checked += 1
        assert checked > 0.3 * s * s
        assert (d["view2"][0][~d["valid2"]] == 0).all()


def test_after_removes_one_object_and_reveals_background(pool):
    for i, style in [(i, "clean") for i in INDICES] + [(i, "styled") for i in range(4)]:
        d = render_scene(i, CFG, pool, style)
        k = int(d["removed_instance"])
        sel = d["instances"] == k
        assert sel.any()
        expected = torch.where(sel[None], d["background"], d["image"])
        assert torch.equal(d["after"], expected)
        obj = int(d["object_ids"][k - 1])
        assert torch.equal(d["removed"][0], pool.images[obj]) and int(d["removed_class"]) == int(pool.labels[obj])
        # the removed object lay on background only: a re-composition without it equals labels with it erased
        labels, _, _ = reference_layout(d, pool, CFG, skip=k)
        assert torch.equal(labels, torch.where(sel, 0, d["labels"]))


def test_styles_give_two_domains(pool):
    clean = [render_scene(i, CFG, pool, "clean") for i in range(8)]
    styled = [render_scene(i, CFG, pool, "styled") for i in range(8)]
    for c, t in zip(clean, styled, strict=True):
        assert (c["background"] == 0).all()
        bg = t["labels"] == 0
        assert t["image"][0][bg].float().mean() > 0.1 * 255 and t["image"][0][bg].float().std() > 0.05 * 255
        # the noise is on the objects too, around the clean object pixels
        obj = ~bg
        diff = t["image"][0][obj].float() - c["image"][0][obj].float()
        assert diff.abs().max() <= 5 * CFG.noise_std * 255 + 1 and diff.std() > 0.5 * CFG.noise_std * 255
    backgrounds = torch.stack([t["background"] for t in styled]).float()
    assert backgrounds.std(0).mean() > 5  # a different texture per scene


def test_config_errors():
    with pytest.raises(ConfigError, match="min_objects"):
        SceneConfig(min_objects=3, max_objects=2)
    with pytest.raises(ConfigError, match="canvas"):
        SceneConfig(canvas=20)
    with pytest.raises(ConfigError, match="homography_jitter"):
        SceneConfig(homography_jitter=0.4)
    with pytest.raises(ConfigError, match="clean or styled"):
        render_scene(0, CFG, scene_objects("train"), "foggy")


def test_digits_fallback(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(images_module, "FASHION_MNIST_DIR", tmp_path / "absent")
    train, test = scene_objects("train"), scene_objects("test")
    assert "scikit-learn's digits" in capsys.readouterr().err
    assert len(train.images) + len(test.images) == 1797 and train.images.shape[1:] == (28, 28)
    d = render_scene(0, SceneConfig(canvas=40), train)
    assert d["image"].shape == (1, 40, 40) and (d["labels"] > 0).any()


def test_small_canvas_and_single_object(pool):
    cfg = SceneConfig(canvas=28, min_objects=1, max_objects=1, homography_jitter=0.0, contrast=0.0, brightness=0.0)
    d = render_scene(3, cfg, pool)
    assert len(d["object_ids"]) == 1 and d["valid2"].all()
    assert torch.allclose(d["homography"], torch.eye(3), atol=1e-6)
    assert torch.equal(d["view2"], d["image"]) and torch.equal(d["labels2"], d["labels"])


# ------------------------------------------------------------------------------------------------------ loader


def test_loader_items_per_kind(pool):
    from ssl_vision.data import VisionDataConfig, load_data
    from ssl_vision.data.scenes import SceneItems

    b = load_data(VisionDataConfig(name="scenes", scenes_train=40))
    assert len(b.train) == 40 and isinstance(b.train, SceneItems)
    x = b.train[7]
    assert x.dtype == torch.uint8 and x.shape == (1, 56, 56)
    assert torch.equal(x, render_scene(7, CFG, pool)["image"])
    assert b.info.image_size == 56 and b.info.channels == 1 and b.info.num_classes == 10
    assert isinstance(b.info.scenes, SceneConfig) and b.info.scenes == CFG
    assert 0.05 < b.info.mean[0] < 0.3 and b.info.std[0] > 0.1

    pair = load_data(VisionDataConfig(name="scenes", scene_items="pair", scenes_train=10)).train[3]
    d = render_scene(3, CFG, pool)
    assert set(pair) == {"image", "view2", "homography", "valid2"}
    for k in pair:
        assert torch.equal(pair[k], d[k]), k
    assert pair["homography"].dtype == torch.float32 and pair["valid2"].dtype == torch.bool

    styled = load_data(VisionDataConfig(name="scenes", scene_style="styled", scenes_train=10))
    assert torch.equal(styled.train[2], render_scene(2, CFG, pool, "styled")["image"])
    assert styled.info.mean[0] > b.info.mean[0]

    dom = load_data(VisionDataConfig(name="scenes", scene_items="domains", scenes_train=10)).train
    for i in range(4):
        item = dom[i]
        assert set(item) == {"source", "source_labels", "target"}
        clean = render_scene(i, CFG, pool)
        assert torch.equal(item["source"], clean["image"]) and torch.equal(item["source_labels"], clean["labels"])
        assert item["source_labels"].dtype == torch.int64 and item["target"].dtype == torch.uint8
        # the target is styled (textured background) and has a layout of its own
        assert not torch.equal(render_scene(i, CFG, pool, "styled")["image"], item["target"])
        assert item["target"][0].float().mean() > item["source"][0].float().mean()
    with pytest.raises(IndexError):
        dom[10]


def test_loader_items_are_the_same_in_dataloader_workers():
    import pickle

    from torch.utils.data import DataLoader

    from ssl_vision.data import VisionDataConfig, load_data

    train = load_data(VisionDataConfig(name="scenes", scene_items="pair", scenes_train=16)).train
    assert len(pickle.dumps(train)) < 10_000  # the object pool travels by reference, not by value
    clone = pickle.loads(pickle.dumps(train))
    assert torch.equal(clone[5]["view2"], train[5]["view2"])
    torch.manual_seed(0)
    a = next(iter(DataLoader(train, batch_size=16, num_workers=2)))
    torch.manual_seed(1)
    b = next(iter(DataLoader(train, batch_size=16, num_workers=0)))
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_probes_are_centred_objects_normalised_like_the_scenes(pool):
    from ssl_vision.data import VisionDataConfig, load_data

    b = load_data(VisionDataConfig(name="scenes", scenes_train=10))
    test_pool = scene_objects("test")
    assert len(b.probe_train.labels) == len(pool.images) and len(b.probe_test.labels) == len(test_pool.images)
    assert torch.equal(b.probe_test.labels, test_pool.labels)
    x = b.probe_test.inputs[4]
    assert x.dtype == torch.float32 and x.shape == (1, 56, 56)
    raw = x * b.info.std[0] + b.info.mean[0]
    expect = torch.zeros(1, 56, 56)
    expect[0, 14:42, 14:42] = test_pool.images[4].float() / 255
    assert torch.allclose(raw, expect, atol=1e-5)


def test_segmentation_split(pool):
    from ssl_vision.data import VisionDataConfig, load_data, segmentation_split

    b = load_data(VisionDataConfig(name="scenes", scenes_train=10))
    x, y = segmentation_split(b.info, 20, "train")
    assert (
        x.shape == (20, 1, 56, 56) and x.dtype == torch.float32 and y.shape == (20, 56, 56) and y.dtype == torch.int64
    )
    assert int(y.min()) == 0 and int(y.max()) <= 10 and (y > 0).any()
    x2, y2 = segmentation_split(b.info, 20, "train")
    assert x2 is x and y2 is y  # cached
    # the same scenes from the config alone, and consistent labels/images: background pixels are 0 before normalising
    x3, y3 = segmentation_split(VisionDataConfig(name="scenes"), 20, "train")
    assert torch.equal(x3, x) and torch.equal(y3, y)
    raw = x[:, 0] * b.info.std[0] + b.info.mean[0]
    assert raw[y == 0].abs().max() < 1e-5 and (raw[y > 0] > 0.1).all()
    xt, yt = segmentation_split(b.info, 20, "test")
    assert not torch.equal(yt, y)
    xs, ys = segmentation_split(b.info, 20, "train", style="styled")
    assert torch.equal(ys, y) and not torch.equal(xs, x)
    # apart from the pretraining scenes
    assert not torch.equal(y[0], render_scene(0, CFG, pool)["labels"])
    with pytest.raises(ConfigError, match="data.name=scenes"):
        segmentation_split(VisionDataConfig(), 5)


def test_loader_config_errors(tmp_path):
    from ssl_vision.data import VisionDataConfig

    with pytest.raises(ConfigError, match="set data.name=scenes"):
        VisionDataConfig(scene_items="pair")
    with pytest.raises(ConfigError, match="set data.name=scenes"):
        VisionDataConfig(name="fashion_mnist", scene_style="styled")
    with pytest.raises(ConfigError, match="scene_items must be image, pair or domains"):
        VisionDataConfig(name="scenes", scene_items="triple")
    with pytest.raises(ConfigError, match="train_labels"):
        VisionDataConfig(name="scenes", train_labels=True)
    with pytest.raises(ConfigError, match="data.scene_canvas"):
        VisionDataConfig(name="scenes", image_size=28)
    with pytest.raises(ConfigError, match="data.scene_.*min_objects"):
        VisionDataConfig(name="scenes", scene_min_objects=5)
    with pytest.raises(ConfigError, match="scenes_train"):
        VisionDataConfig(name="scenes", scenes_train=0)
    assert VisionDataConfig(name="scenes", max_train=5).scene_config() == CFG


def test_scenes_from_the_command_line_overrides():
    from omegaconf import OmegaConf

    from ssl_vision.data import VisionDataConfig, load_data

    layer = OmegaConf.from_dotlist(["name=scenes", "scene_items=pair", "scenes_train=8", "scene_jitter=0.05"])
    data = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(VisionDataConfig()), layer))
    assert isinstance(data, VisionDataConfig) and data.scene_items == "pair"
    b = load_data(data)
    assert len(b.train) == 8 and b.info.scenes.homography_jitter == 0.05


def test_scenes_of_user_object_images(tmp_path):
    import pickle

    from ssl_core.errors import DataError
    from ssl_vision.data import VisionDataConfig, load_data, segmentation_split

    g = torch.Generator().manual_seed(0)
    n = 30
    x = torch.zeros(n, 28, 28, dtype=torch.uint8)
    y = torch.arange(n) % 3
    for i in range(n):  # class c: a bright square of side 8 + 4c on a dark background
        side = 8 + 4 * int(y[i])
        t, left = (int(v) for v in torch.randint(0, 28 - side + 1, (2,), generator=g))
        x[i, t : t + side, left : left + side] = 200
    np.save(tmp_path / "images.npy", x.numpy())
    np.save(tmp_path / "labels.npy", y.numpy())
    data = VisionDataConfig(name="scenes", path=str(tmp_path), scenes_train=6, scene_items="pair")
    b = load_data(data)
    assert str(tmp_path) in b.description and b.info.scenes.objects == str(tmp_path)
    item = b.train[0]
    assert item["image"].shape == (1, 56, 56) and item["image"].max() == 200
    assert len(b.probe_train.labels) + len(b.probe_test.labels) == n and len(b.probe_test.labels) >= 3
    xs, ys = segmentation_split(b.info, 5, "test")
    assert set(ys.unique().tolist()) <= {0, 1, 2, 3} and (ys > 0).any()
    assert torch.equal(pickle.loads(pickle.dumps(b.train))[2]["view2"], b.train[2]["view2"])
    bad = tmp_path / "twelve"
    bad.mkdir()
    np.save(bad / "images.npy", x.numpy())
    np.save(bad / "labels.npy", (torch.arange(n) % 12).numpy())
    with pytest.raises(DataError, match="at most 10 object classes"):
        load_data(VisionDataConfig(name="scenes", path=str(bad)))

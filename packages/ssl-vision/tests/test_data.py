import pytest
import torch
from torchvision.io import write_png

from ssl_core.errors import DataError
from ssl_vision.data import VisionDataConfig, load_data
from ssl_vision.data import images as images_module


def make_folder(root, classes=("cat", "dog"), per_class=10, size=20):
    g = torch.Generator().manual_seed(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            img = torch.randint(0, 256, (3, size, size + 4), generator=g, dtype=torch.uint8)
            write_png(img, str(root / c / f"{i}.png"))


def test_fashion_mnist_default():
    if not images_module.is_idx_folder(images_module.FASHION_MNIST_DIR):
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    b = load_data(VisionDataConfig())
    assert len(b.train) == 60_000 and len(b.probe_test.labels) == 10_000
    assert b.train[0].shape == (1, 28, 28) and b.train[0].dtype == torch.uint8
    assert b.info.num_classes == 10 and b.info.mean[0] == pytest.approx(0.286, abs=0.01)
    # the probe splits name the classes (the legend of plots/embeddings.png); label 9 is the ankle boot
    assert b.probe_test.class_names[9] == "Ankle boot" and b.probe_train.class_names[0] == "T-shirt/top"
    x = b.probe_test.inputs[0]
    assert x.dtype == torch.float32 and x.shape == (1, 28, 28)


def test_falls_back_to_digits_with_a_message(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(images_module, "FASHION_MNIST_DIR", tmp_path / "absent")
    b = load_data(VisionDataConfig())
    assert "using scikit-learn's digits" in capsys.readouterr().err
    assert len(b.train) + len(b.probe_test.labels) == 1797 and b.info.image_size == 28
    assert list(b.probe_test.class_names) == [str(d) for d in range(10)]
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_data(VisionDataConfig(name="fashion_mnist"))


def test_labelled_image_folder(tmp_path):
    make_folder(tmp_path)
    b = load_data(VisionDataConfig(path=str(tmp_path), image_size=16, test_fraction=0.2))
    assert len(b.train) == 16 and len(b.probe_test.labels) == 4
    assert b.train[0].shape == (3, 16, 16)
    assert sorted(b.probe_test.labels.tolist()) == [0, 0, 1, 1]
    assert b.info.num_classes == 2 and b.info.channels == 3
    assert b.probe_test.class_names == b.probe_train.class_names == ("cat", "dog")  # the subfolders, sorted


def test_unlabelled_image_folder_and_grayscale(tmp_path):
    make_folder(tmp_path, classes=("only",))
    b = load_data(VisionDataConfig(path=str(tmp_path / "only"), image_size=12, channels=1))
    assert b.probe_train is None and len(b.train) == 10 and b.train[3].shape == (1, 12, 12)


def test_bad_folders_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_data(VisionDataConfig(path=str(tmp_path / "nope")))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="no images found"):
        load_data(VisionDataConfig(path=str(tmp_path / "empty")))
    with pytest.raises(DataError, match="got the file"):
        load_data(VisionDataConfig(path=str(tmp_path / "empty" / "notes.txt")))
    make_folder(tmp_path / "broken", classes=("a", "b"), per_class=3)
    (tmp_path / "broken" / "a" / "0.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read image .*0.png"):
        b = load_data(VisionDataConfig(path=str(tmp_path / "broken")))
        [b.train[i] for i in range(len(b.train))]


def test_npy_folder_and_file(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (30, 12, 12, 3), dtype=np.uint8)  # channels last
    np.save(tmp_path / "images.npy", x)
    np.save(tmp_path / "labels.npy", np.arange(30) % 3)
    b = load_data(VisionDataConfig(path=str(tmp_path)))
    assert b.info.channels == 3 and b.info.image_size == 12 and b.info.num_classes == 3
    assert len(b.train) == 24 and len(b.probe_test.labels) == 6  # 20% of each class held out
    # channels-last arrays are transposed to (C, H, W)
    assert any(torch.equal(b.train[0], torch.from_numpy(x[i]).permute(2, 0, 1)) for i in range(30))
    # a test split given as files is used as is; float images in [0, 1] are scaled to uint8
    np.save(tmp_path / "test_images.npy", (x[:5, :, :, 0] / 255.0).astype(np.float32))
    np.save(tmp_path / "test_labels.npy", np.zeros(5, dtype=np.int64))
    np.save(tmp_path / "images.npy", x[..., 0])
    b = load_data(VisionDataConfig(path=str(tmp_path)))
    assert len(b.train) == 30 and len(b.probe_test.labels) == 5 and b.info.channels == 1
    # one file: unlabelled images, the probes are skipped
    np.save(tmp_path / "only.npy", rng.random((7, 1, 10, 10)).astype(np.float32))
    b = load_data(VisionDataConfig(path=str(tmp_path / "only.npy")))
    assert b.probe_train is None and len(b.train) == 7 and b.train[0].shape == (1, 10, 10)


def test_bad_npy_arrays_name_the_problem(tmp_path):
    import numpy as np

    np.save(tmp_path / "a.npy", np.zeros((4, 5)))
    with pytest.raises(DataError, match="expected images"):
        load_data(VisionDataConfig(path=str(tmp_path / "a.npy")))
    np.save(tmp_path / "b.npy", np.full((4, 8, 8), 3.0))
    with pytest.raises(DataError, match=r"must lie in \[0, 1\]"):
        load_data(VisionDataConfig(path=str(tmp_path / "b.npy")))
    (tmp_path / "f").mkdir()
    np.save(tmp_path / "f" / "images.npy", np.zeros((4, 8, 8), np.uint8))
    np.save(tmp_path / "f" / "labels.npy", np.zeros(3, np.int64))
    with pytest.raises(DataError, match="must hold 4 integer labels"):
        load_data(VisionDataConfig(path=str(tmp_path / "f")))


def test_non_finite_npy_images_are_refused_with_the_file_and_the_count(tmp_path):
    import numpy as np

    np.save(tmp_path / "nan.npy", np.full((6, 8, 8), np.nan, np.float32))  # the all-NaN file that trained in silence
    with pytest.raises(DataError, match=r"nan.npy holds 384 non-finite values \(384 NaN, 0 infinite\) of 384"):
        load_data(VisionDataConfig(path=str(tmp_path / "nan.npy")))
    (tmp_path / "f").mkdir()
    x = np.random.default_rng(0).random((10, 8, 8)).astype(np.float32)
    np.save(tmp_path / "f" / "images.npy", x)
    np.save(tmp_path / "f" / "labels.npy", np.arange(10) % 2)
    x[3, 0, :2] = np.inf
    np.save(tmp_path / "f" / "test_images.npy", x)
    np.save(tmp_path / "f" / "test_labels.npy", np.arange(10) % 2)
    with pytest.raises(DataError, match=r"test_images.npy holds 2 non-finite values \(0 NaN, 2 infinite\)"):
        load_data(VisionDataConfig(path=str(tmp_path / "f")))


def test_a_class_of_two_images_keeps_one_for_training(tmp_path):
    """The split is ssl_core.data.stratified_split: with test_fraction 0.8, 2 images of a class used to both go
    to the test set, leaving the probes nothing of that class to learn from."""
    make_folder(tmp_path, per_class=2)
    b = load_data(VisionDataConfig(path=str(tmp_path), image_size=16, test_fraction=0.8))
    assert sorted(b.probe_train.labels.tolist()) == sorted(b.probe_test.labels.tolist()) == [0, 1]


def test_train_labels_pair_each_pretraining_image_with_its_label(tmp_path):
    make_folder(tmp_path / "labelled")
    b = load_data(VisionDataConfig(path=str(tmp_path / "labelled"), image_size=16, train_labels=True))
    item = b.train[0]
    assert set(item) == {"image", "label"} and item["image"].shape == (3, 16, 16)
    assert [int(b.train[i]["label"]) for i in range(len(b.train))] == b.probe_train.labels.tolist()
    b = load_data(VisionDataConfig(name="digits", train_labels=True))
    assert (
        torch.equal(b.train[5]["image"], b.probe_train.inputs.base[5])
        and b.train[5]["label"] == b.probe_train.labels[5]
    )
    make_folder(tmp_path / "plain", classes=("only",))
    with pytest.raises(DataError, match="trains on labels"):
        load_data(VisionDataConfig(path=str(tmp_path / "plain" / "only"), train_labels=True))

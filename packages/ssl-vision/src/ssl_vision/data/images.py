"""Image data sets: Fashion-MNIST (embedded default), scikit-learn digits, IDX and ``.npy`` arrays, image folders."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import v2

from ssl_core.data import DataBundle, LabeledSplit, stratified_split
from ssl_core.errors import DataError
from ssl_vision.data.arrays import is_npy_folder, load_npy_folder, read_npy_images
from ssl_vision.data.idx import is_idx_folder, load_idx_folder

if TYPE_CHECKING:
    from ssl_vision.data.scenes import SceneConfig

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
DATASETS = {
    "fashion_mnist": "Fashion-MNIST, 60,000 + 10,000 28x28 grayscale images, 10 classes "
    f"(Debian's dataset-fashion-mnist in {FASHION_MNIST_DIR}, or --data with the IDX files)",
    "digits": "scikit-learn's bundled digits, 1,797 8x8 images upsampled to 28x28, 10 classes (offline fallback)",
    "folder": "--data PATH: a folder of images (.png, .jpg, ...); class subfolders give probe labels; "
    "a folder of MNIST-style IDX files also works",
    "npy": "--data PATH: a .npy file of images (N, H, W) / (N, C, H, W) / (N, H, W, C), or a folder with "
    "images.npy and optionally labels.npy, test_images.npy, test_labels.npy",
    "scenes": "--set data.name=scenes: generated 56x56 scenes of 2-4 Fashion-MNIST objects with per-pixel labels, "
    "a second viewpoint (homography), clean / styled domains (data.scene_items=image|pair|domains)",
}
SCENE_ITEMS = ("image", "pair", "domains")


@dataclass
class VisionDataConfig:
    """Which images to load (``--set data.<name>=<value>``).

    Args:
        name: ``auto`` (``path`` if given, else Fashion-MNIST, else scikit-learn digits), ``fashion_mnist``,
            ``digits`` or ``scenes`` (generated scenes of Fashion-MNIST objects, :mod:`ssl_vision.data.scenes`;
            the probes then see Fashion-MNIST images centred on a clean canvas).
        path: a folder of images (class subfolders give labels), of MNIST-style IDX files or of ``.npy``
            arrays (``images.npy`` [+ ``labels.npy``, ``test_images.npy``, ``test_labels.npy``]), or one
            ``.npy`` file of unlabelled images. With ``name=scenes``: the labelled object images the scenes
            draw (at most 10 classes, read as 28x28 grayscale, light objects on a dark background) instead of
            Fashion-MNIST.
        image_size: side of the square images (default: 28 for IDX and digits, 64 for image folders).
        channels: 1 (grayscale) or 3 (RGB); default: as stored (image folders: 3).
        test_fraction: share of each class held out as the probe test set when the data has no test split
            (:func:`ssl_core.data.stratified_split`: a class of at least 2 images keeps one on each side).
        max_train: use at most this many pretraining images (``None``: all); for smoke runs.
        train_labels: pretraining items carry their labels, ``{"image": (C, H, W) uint8, "label": int}``
            instead of the image alone: for recipes that train on labels as well (SLA, the multi-task recipe).
        seed: seeds the held-out split and ``max_train`` subset; with ``name=scenes``, the scenes.
        scene_items: what a pretraining item of ``name=scenes`` is: ``image`` (a uint8 ``(1, S, S)`` scene, so
            any image recipe trains on scenes), ``pair`` (``{"image", "view2", "homography", "valid2"}``: two
            views of one layout, for cross-view recipes) or ``domains`` (``{"source": clean scene,
            "source_labels": (S, S) int64, "target": styled scene of an independent layout}``).
        scene_canvas: side ``S`` of the scene canvas (at least 28).
        scenes_train: scenes per pretraining epoch (rendered on the fly, the same ones every epoch).
        scene_style: ``clean`` (black background) or ``styled`` (textured background and pixel noise) for
            ``image`` and ``pair`` items (``domains`` items carry one of each).
        scene_min_objects, scene_max_objects: objects per scene.
        scene_jitter: view 2's homography moves each canvas corner by up to this share of the canvas.
    """

    name: str = "auto"
    path: str | None = None
    image_size: int | None = None
    channels: int | None = None
    test_fraction: float = 0.2
    max_train: int | None = None
    train_labels: bool = False
    seed: int = 0
    scene_items: str = "image"
    scene_canvas: int = 56
    scenes_train: int = 20_000
    scene_style: str = "clean"
    scene_min_objects: int = 2
    scene_max_objects: int = 4
    scene_jitter: float = 0.12

    def __post_init__(self) -> None:
        from ssl_core.errors import ConfigError

        if self.name not in ("auto", "fashion_mnist", "digits", "scenes"):
            raise ConfigError(f"data.name must be auto, fashion_mnist, digits or scenes, got {self.name!r}")
        self._check_scenes()
        if self.channels not in (None, 1, 3):
            raise ConfigError(f"data.channels must be 1 or 3, got {self.channels}")
        if self.image_size is not None and self.image_size < 8:
            raise ConfigError(f"data.image_size must be at least 8, got {self.image_size}")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"data.test_fraction must lie in (0, 1), got {self.test_fraction}")
        if self.max_train is not None and self.max_train < 1:
            raise ConfigError(f"data.max_train must be positive, got {self.max_train}")

    def _check_scenes(self) -> None:
        from ssl_core.errors import ConfigError

        if self.scene_items not in SCENE_ITEMS:
            raise ConfigError(f"data.scene_items must be image, pair or domains, got {self.scene_items!r}")
        if self.scene_style not in ("clean", "styled"):
            raise ConfigError(f"data.scene_style must be clean or styled, got {self.scene_style!r}")
        if self.name != "scenes":
            if self.scene_items != "image":
                raise ConfigError(
                    f"data.scene_items={self.scene_items} needs generated scenes: set data.name=scenes "
                    f"(data.name is {self.name})"
                )
            if self.scene_style != "clean":
                raise ConfigError(
                    f"data.scene_style={self.scene_style} applies to generated scenes only: set data.name=scenes"
                )
            return
        if self.train_labels:
            raise ConfigError(
                "data.train_labels=true is not supported with data.name=scenes (a scene has several objects); "
                "use data.name=fashion_mnist for recipes that train on labels"
            )
        if self.image_size is not None and self.image_size != self.scene_canvas:
            raise ConfigError(
                f"data.image_size={self.image_size} with data.name=scenes: set the canvas with "
                f"data.scene_canvas instead (now {self.scene_canvas})"
            )
        if self.channels not in (None, 1):
            raise ConfigError(
                f"scenes are grayscale: data.channels must be 1 with data.name=scenes, got {self.channels}"
            )
        if self.scenes_train < 1:
            raise ConfigError(f"data.scenes_train must be positive, got {self.scenes_train}")
        try:
            self.scene_config()
        except ConfigError as e:
            raise ConfigError(f"data.scene_*: {e}") from None

    def scene_config(self) -> SceneConfig:
        """The :class:`~ssl_vision.data.scenes.SceneConfig` of ``name=scenes`` (canvas, objects, jitter, seed)."""
        from ssl_vision.data.scenes import SceneConfig

        return SceneConfig(
            canvas=self.scene_canvas,
            min_objects=self.scene_min_objects,
            max_objects=self.scene_max_objects,
            homography_jitter=self.scene_jitter,
            seed=self.seed,
            objects=self.path,
        )


@dataclass
class ImageInfo:
    """What a vision model needs to know about its inputs.

    Args:
        channels: image channels.
        image_size: side of the square images.
        mean, std: per-channel statistics of the training images in [0, 1], used to normalise.
        num_classes: number of label classes (``None`` without labels).
        scenes: with generated scenes (``data.name=scenes``), their configuration (``None`` otherwise).
    """

    channels: int
    image_size: int
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    num_classes: int | None = None
    scenes: SceneConfig | None = None


class ImageTensors(Dataset):
    """In-memory uint8 images ``(N, C, H, W)``; item ``i`` is ``images[i]``, a ``(C, H, W)`` uint8 tensor."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


class LabeledImages(Dataset):
    """Images (a uint8 tensor ``(N, C, H, W)`` or a data set of them) with their labels; item ``i`` is
    ``{"image": (C, H, W) uint8, "label": int64}``."""

    def __init__(self, images: torch.Tensor | Dataset, labels: torch.Tensor) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, labels.long()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i], "label": self.labels[i]}


class ImageFiles(Dataset):
    """Image files decoded on access and resized (shorter side, then centre crop) to ``size`` x ``size``.

    Item ``i`` is a ``(channels, size, size)`` uint8 tensor.
    """

    def __init__(self, paths: list[Path], size: int, channels: int) -> None:
        self.paths, self.size, self.channels = paths, size, channels
        self.mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
        self.resize = v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size)])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        path = self.paths[i]
        try:
            data = torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)
            img = decode_image(data, mode=self.mode)
        except (OSError, RuntimeError) as e:
            raise DataError(
                f"cannot read image {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
            ) from None
        return self.resize(img)


class Normalized(Dataset):
    """Probe inputs: uint8 images scaled to [0, 1] and normalised with the training statistics."""

    def __init__(self, base: Dataset, mean: list[float], std: list[float]) -> None:
        self.base = base
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> torch.Tensor:
        return (self.base[i].float() / 255 - self.mean) / self.std


def _channel_stats(images: Dataset, limit: int = 2000) -> tuple[list[float], list[float]]:
    n = min(len(images), limit)
    idx = torch.linspace(0, len(images) - 1, n).long().tolist()
    x = torch.stack([images[i].float() / 255 for i in idx])  # (n, C, H, W)
    return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()


def _as_nchw(x: torch.Tensor, channels: int | None, size: int | None) -> torch.Tensor:
    x = x.unsqueeze(1) if x.ndim == 3 else x
    if channels is not None and x.shape[1] != channels:
        if channels == 3 and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1).contiguous()
        elif channels == 1 and x.shape[1] == 3:  # ITU-R 601 luma, as PIL's convert("L")
            luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
            x = luma.round().clamp(0, 255).to(torch.uint8).unsqueeze(1)
        else:
            raise DataError(f"cannot turn {x.shape[1]}-channel images into {channels} channels")
    if size is not None and (x.shape[-1] != size or x.shape[-2] != size):
        x = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        x = x.round().clamp(0, 255).to(torch.uint8)
    return x


def _bundle(
    x_train,
    y_train,
    x_test,
    y_test,
    cfg: VisionDataConfig,
    description: str,
    num_classes: int,
    class_names: tuple[str, ...] | None = None,
) -> DataBundle:
    """Assemble a bundle from in-memory uint8 ``(N, C, H, W)`` arrays."""
    if cfg.max_train is not None and cfg.max_train < len(x_train):
        g = torch.Generator().manual_seed(cfg.seed)
        keep = torch.randperm(len(x_train), generator=g)[: cfg.max_train].sort().values
        x_train, y_train = x_train[keep], y_train[keep]
        description += f" (using {cfg.max_train:,} pretraining images)"
    train = ImageTensors(x_train)
    mean, std = _channel_stats(train)
    info = ImageInfo(
        channels=x_train.shape[1], image_size=x_train.shape[-1], mean=mean, std=std, num_classes=num_classes
    )
    return DataBundle(
        train=LabeledImages(x_train, y_train) if cfg.train_labels else train,
        info=info,
        description=description + (", pretraining on images and labels" if cfg.train_labels else ""),
        probe_train=LabeledSplit(Normalized(train, mean, std), y_train, class_names),
        probe_test=LabeledSplit(Normalized(ImageTensors(x_test), mean, std), y_test, class_names),
    )


def _from_arrays(
    name: str, x_tr, y_tr, x_te, y_te, cfg: VisionDataConfig, source: str, class_names: tuple[str, ...] | None = None
) -> DataBundle:
    x_tr = _as_nchw(x_tr, cfg.channels, cfg.image_size)
    if x_te is None:
        tr, te = stratified_split(y_tr, cfg.test_fraction, cfg.seed)
        x_tr, y_tr, x_te, y_te = x_tr[tr], y_tr[tr], x_tr[te], y_tr[te]
    else:
        x_te = _as_nchw(x_te, cfg.channels, cfg.image_size)
    num_classes = int(max(y_tr.max(), y_te.max())) + 1
    c, s = x_tr.shape[1], x_tr.shape[-1]
    desc = f"{name} from {source}: {len(x_tr):,} train / {len(x_te):,} test images, {c}x{s}x{s}, {num_classes} classes"
    if class_names is not None and len(class_names) < num_classes:
        class_names = None  # labels beyond the known names: show indices
    return _bundle(x_tr, y_tr, x_te, y_te, cfg, desc, num_classes, class_names)


def _refuse_train_labels(cfg: VisionDataConfig, source: str) -> None:
    if cfg.train_labels:
        raise DataError(
            f"this recipe trains on labels (data.train_labels=true), but {source} has none: give a folder with "
            "class subfolders, IDX files with labels, or a .npy folder with labels.npy"
        )


def _unlabelled_arrays(x: torch.Tensor, cfg: VisionDataConfig, source: str) -> DataBundle:
    """Pretraining images without labels (the probes are skipped)."""
    _refuse_train_labels(cfg, source)
    x = _as_nchw(x, cfg.channels, cfg.image_size)
    if cfg.max_train is not None:
        x = x[: cfg.max_train]
    train = ImageTensors(x)
    mean, std = _channel_stats(train)
    c, s = x.shape[1], x.shape[-1]
    return DataBundle(
        train=train,
        info=ImageInfo(channels=c, image_size=s, mean=mean, std=std),
        description=f"{len(x):,} unlabelled images from {source}, {c}x{s}x{s}",
    )


def load_npy(root: Path, cfg: VisionDataConfig) -> DataBundle:
    """A ``.npy`` file of images (unlabelled), or a folder of ``.npy`` arrays (see :mod:`ssl_vision.data.arrays`)."""
    if root.is_file():
        return _unlabelled_arrays(read_npy_images(root), cfg, str(root))
    x, y, xt, yt = load_npy_folder(root)
    if y is None:
        return _unlabelled_arrays(x, cfg, str(root))
    return _from_arrays("NumPy images", x, y, xt, yt, cfg, str(root))


def load_digits_images(cfg: VisionDataConfig) -> DataBundle:
    """scikit-learn's bundled digits (1,797 8x8 images, 10 classes), upsampled to 28x28 by default."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.from_numpy((x * (255 / 16)).round().astype("uint8")).view(-1, 8, 8)
    cfg = VisionDataConfig(**{**cfg.__dict__, "image_size": cfg.image_size or 28})
    names = tuple(str(d) for d in range(10))
    return _from_arrays("scikit-learn digits", x, torch.from_numpy(y).long(), None, None, cfg, "scikit-learn", names)


def _image_files(root: Path) -> list[Path]:
    try:
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    except OSError as e:
        raise DataError(f"cannot read the folder {root}: {e}") from None
    return [p for p in files if not any(part.startswith(".") for part in p.relative_to(root).parts)]


def load_image_folder(cfg: VisionDataConfig) -> DataBundle:
    """A folder of image files. With class subfolders (``root/<class>/.../*.png``), the subfolder names are
    the probe labels and a stratified ``test_fraction`` of each class is held out for the probe test set
    (and not pretrained on); without them, the images are pretrained on and the probes are skipped."""
    root = Path(cfg.path)
    if not os.access(root, os.R_OK | os.X_OK):
        raise DataError(f"cannot read the folder {root}: permission denied")
    files = _image_files(root)
    if not files:
        raise DataError(f"no images found in {root} (looked for {', '.join(IMAGE_SUFFIXES)}, also in subfolders)")
    size, channels = cfg.image_size or 64, cfg.channels or 3
    top = [p.relative_to(root).parts for p in files]
    labelled = all(len(parts) > 1 for parts in top) and len({parts[0] for parts in top}) > 1
    if not labelled:
        _refuse_train_labels(cfg, str(root))
        images = ImageFiles(files, size, channels)
        if cfg.max_train is not None:
            images.paths = images.paths[: cfg.max_train]
        mean, std = _channel_stats(images, limit=500)
        info = ImageInfo(channels=channels, image_size=size, mean=mean, std=std)
        return DataBundle(
            train=images,
            info=info,
            description=f"{len(images):,} unlabelled images from {root}, resized to {channels}x{size}x{size}",
        )
    classes = sorted({parts[0] for parts in top})
    labels = torch.tensor([classes.index(parts[0]) for parts in top])
    tr, te = stratified_split(labels, cfg.test_fraction, cfg.seed)
    if cfg.max_train is not None:
        tr = tr[: cfg.max_train]
    train = ImageFiles([files[i] for i in tr], size, channels)
    test = ImageFiles([files[i] for i in te], size, channels)
    mean, std = _channel_stats(train, limit=500)
    info = ImageInfo(channels=channels, image_size=size, mean=mean, std=std, num_classes=len(classes))
    desc = (
        f"{len(files):,} images in {len(classes)} classes from {root}, resized to {channels}x{size}x{size}; "
        f"{len(train):,} for pretraining and the probes' training set, {len(test):,} held out for testing"
    )
    return DataBundle(
        train=LabeledImages(train, labels[tr]) if cfg.train_labels else train,
        info=info,
        description=desc,
        probe_train=LabeledSplit(Normalized(train, mean, std), labels[tr], tuple(classes)),
        probe_test=LabeledSplit(Normalized(test, mean, std), labels[te], tuple(classes)),
    )


def load_data(cfg: VisionDataConfig) -> DataBundle:
    """Load the images ``cfg`` names (see :class:`VisionDataConfig`)."""
    if cfg.name == "scenes":
        from ssl_vision.data.scenes import load_scenes

        return load_scenes(cfg)
    if cfg.path is not None:
        root = Path(cfg.path).expanduser()
        if not root.exists():
            raise DataError(f"data path not found: {root}")
        if root.is_file() and root.suffix == ".npy":
            return load_npy(root, cfg)
        if not root.is_dir():
            raise DataError(f"--data must be a folder (images, IDX or .npy files) or a .npy file, got the file {root}")
        if is_npy_folder(root):
            return load_npy(root, cfg)
        if is_idx_folder(root):
            return _from_arrays("IDX images", *load_idx_folder(root), cfg, str(root))
        return load_image_folder(VisionDataConfig(**{**cfg.__dict__, "path": str(root)}))
    if cfg.name == "digits":
        return load_digits_images(cfg)
    if is_idx_folder(FASHION_MNIST_DIR):
        return _from_arrays(
            "Fashion-MNIST", *load_idx_folder(FASHION_MNIST_DIR), cfg, str(FASHION_MNIST_DIR), FASHION_MNIST_CLASSES
        )
    if cfg.name == "fashion_mnist":
        raise DataError(
            f"Fashion-MNIST not found in {FASHION_MNIST_DIR}: apt-get install dataset-fashion-mnist, "
            "or pass --data with a folder of its IDX files"
        )
    print(
        f"note: Fashion-MNIST not found in {FASHION_MNIST_DIR} (apt-get install dataset-fashion-mnist, or pass "
        "--data PATH); using scikit-learn's digits (1,797 8x8 images) instead",
        file=sys.stderr,
    )
    return load_digits_images(cfg)

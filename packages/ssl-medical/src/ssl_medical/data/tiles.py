"""Pathology tiles: scikit-image's immunohistochemistry image (``--data pathology``) or a user folder of
PNG / JPG / TIFF tiles, as :class:`~ssl_core.data.DataBundle` objects of float RGB tiles ``(3, S, S)`` in
``[0, 1]`` (``S = TileInfo.size``).

No labelled slide set is available offline, so the default data has no tissue classes. Its probe is
**stain-robust tile identification**, built as follows. The IHC image (512 x 512, haematoxylin counterstain and
DAB) is split into a pretraining region (the left 384 columns) and a held-out strip (the right
``2 * tile_size`` = 128 columns) that pretraining never sees. The strip holds a grid of non-overlapping source
tiles (16 at 64 px); each source tile is one class. Every probe sample is a *variant* of a source tile: its
window shifted by up to ``probe_shift`` pixels (staying inside the strip), one of the 8 rotations / flips of the
square, and an HED stain jitter (:class:`~ssl_medical.transforms.stain.HEDJitter` with ``probe_stain`` =
``(sigma, bias)``, stronger than the pretraining views' default). ``probe_train`` holds ``probe_variants``
variants of each source, ``probe_test`` as many other, independently drawn variants. A kNN or linear probe
on it scores whether a representation recognises the same piece of tissue through stain, orientation and
small position changes, which is what stain augmentation is meant to buy (the probe shares that design
choice with the method, and says nothing about diagnostic classes). Baselines: raw pixels (``raw_input``,
4 x 4 block means, see :func:`pooled_pixels`) and ``stain_stats``, the per-tile mean and standard deviation of
R, G, B, H, E and DAB (12 numbers, invariant to rotation and shift, so a strong baseline for small stain
changes).

A user folder is unlabelled when its images lie directly in it (pretraining only, no probes), labelled when
they lie in ``<class>/`` subfolders: then a stratified 70 / 30 split of the labelled tiles (centre-cropped to
the tile size) gives ``probe_train`` / ``probe_test``; all tiles, labelled or not, are pretrained on.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from ssl_core.data import DataBundle, LabeledSplit, stratified_split
from ssl_core.errors import ConfigError, DataError
from ssl_medical.data.config import MedicalDataConfig
from ssl_medical.info import TileInfo
from ssl_medical.transforms.stain import HEDJitter, rgb_to_hed

TILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
PROBE_TEST_FRACTION = 0.3


def ihc_image() -> torch.Tensor:
    """scikit-image's bundled immunohistochemistry image (``skimage.data.immunohistochemistry()``, file
    ``skimage/data/ihc.png``: 512 x 512 RGB, haematoxylin and DAB), as uint8 ``(3, 512, 512)``."""
    import skimage.data

    return torch.from_numpy(np.ascontiguousarray(skimage.data.immunohistochemistry())).permute(2, 0, 1).contiguous()


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """One of the 8 symmetries of the square: ``k % 4`` quarter turns, mirrored left-right when ``k >= 4``.

    Shapes:
        - x: ``(..., H, W)`` with ``H == W``; output: the same
    """
    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return x.flip(-1) if k >= 4 else x


class RandomTiles(Dataset):
    """Random tiles of one or more images, each in a random one of the 8 rotations / flips, drawn from torch's
    global generator (the trainer seeds it per sample and epoch, so every epoch sees new tiles, reproducibly).

    Args:
        images: uint8 ``(3, H, W)`` tensors (``H, W >= size``), or paths decoded on access.
        size: tile side.
        length: items per epoch (item ``i`` is a tile of image ``i % len(images)``).
        width: only the columns ``[0, width)`` of each image are cut from (``None``: all).

    Shapes:
        - item: float ``(3, size, size)`` in ``[0, 1]``
    """

    def __init__(self, images: Sequence[torch.Tensor | Path], size: int, length: int, width: int | None = None) -> None:
        self.images, self.size, self.length, self.width = list(images), size, length, width

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> torch.Tensor:
        img = self.images[i % len(self.images)]
        img = read_tile(img) if isinstance(img, Path) else img
        h, w = img.shape[-2], (img.shape[-1] if self.width is None else self.width)
        y = int(torch.randint(0, h - self.size + 1, ()))
        x = int(torch.randint(0, w - self.size + 1, ()))
        tile = img[:, y : y + self.size, x : x + self.size]
        return dihedral(tile, int(torch.randint(0, 8, ()))).float() / 255


class CenterTiles(Dataset):
    """Tile files decoded on access, centre-cropped to ``size`` (the probe inputs of a labelled folder).

    Shapes:
        - item: float ``(3, size, size)`` in ``[0, 1]``
    """

    def __init__(self, paths: Sequence[Path], size: int) -> None:
        self.paths, self.size = list(paths), size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        img = read_tile(self.paths[i])
        y, x = (img.shape[1] - self.size) // 2, (img.shape[2] - self.size) // 2
        return img[:, y : y + self.size, x : x + self.size].float() / 255


def _open(path: Path) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(
            f"cannot read the tile image {path} ({e}); remove it or save it again as PNG, JPG or TIFF"
        ) from e


def _check_mode(img: Image.Image, path: Path) -> None:
    if img.mode not in ("RGB", "RGBA", "L", "LA", "P", "CMYK", "YCbCr"):
        raise DataError(
            f"the tile image {path} has pixel mode {img.mode!r} (16-bit or float); save the tiles as 8-bit RGB"
        )


def read_tile(path: Path) -> torch.Tensor:
    """Decode one tile file into uint8 RGB ``(3, H, W)`` (grey and palette images are converted to RGB)."""
    img = _open(path)
    _check_mode(img, path)
    try:
        arr = np.asarray(img.convert("RGB"))
    except (OSError, ValueError) as e:
        raise DataError(f"cannot decode the tile image {path} ({e}); remove it or save it again") from e
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def pooled_pixels(batch: torch.Tensor) -> torch.Tensor:
    """The ``raw_input`` baseline of tiles: the pixels of each tile averaged over 4 x 4 blocks, flattened
    (64-px tiles: 16 x 16 x 3 = 768 numbers). At full resolution (12,288 numbers) the IHC probe scores the same
    (kNN 23.8% / linear 66.8% against 27.0% / 66.4%) but its linear probe costs 150 s instead of 5 s on 2 busy
    cores.

    Shapes:
        - batch: ``(B, 3, H, W)``; output: ``(B, 3 * (H // 4) * (W // 4))``
    """
    return F.avg_pool2d(batch.float(), 4).flatten(1)


def stain_stats(batch: torch.Tensor) -> torch.Tensor:
    """The ``stain_stats`` baseline: per tile, the mean and standard deviation of R, G, B and of the stain
    amounts H, E, DAB (:func:`~ssl_medical.transforms.stain.rgb_to_hed`).

    Shapes:
        - batch: ``(B, 3, H, W)`` in ``[0, 1]``; output: ``(B, 12)``
    """
    x = torch.cat([batch.float(), rgb_to_hed(batch.float())], dim=1)  # (B, 6, H, W)
    return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)


def identification_probe(
    image: torch.Tensor, cfg: MedicalDataConfig, size: int
) -> tuple[LabeledSplit, LabeledSplit, int]:
    """The stain-robust tile identification probe of the module docstring, on the right ``2 * size`` columns
    of ``image``.

    Returns:
        ``(probe_train, probe_test, strip_start)``: the two splits and the first column of the held-out strip
        (pretraining cuts tiles left of it).

    Shapes:
        - image: uint8 ``(3, H, W)``; split inputs: float ``(K * probe_variants, 3, size, size)``
    """
    _, h, w = image.shape
    x0 = w - 2 * size
    if x0 < size or h < size:
        raise DataError(f"the probe image ({h}x{w}) is too small for {size}-px tiles: use a smaller data.tile_size")
    sources = [(r * size, x0 + c * size) for r in range(h // size) for c in range(2)]
    if not 1 < cfg.probe_tiles <= len(sources):
        raise ConfigError(
            f"data.probe_tiles={cfg.probe_tiles}, but the held-out strip holds 2 to {len(sources)} source tiles of "
            f"{size} px"
        )
    if cfg.probe_variants < 1 or cfg.probe_shift < 0:
        raise ConfigError("data.probe_variants must be >= 1 and data.probe_shift >= 0")
    sigma, bias = (float(v) for v in cfg.probe_stain)
    jitter = HEDJitter(sigma, bias)
    g = torch.Generator().manual_seed(cfg.seed)
    chosen = [sources[i] for i in torch.randperm(len(sources), generator=g)[: cfg.probe_tiles].sort().values]
    splits = []
    for _ in range(2):
        tiles, labels = [], []
        for label, (ys, xs) in enumerate(chosen):
            for _ in range(cfg.probe_variants):
                dy, dx = (torch.randint(-cfg.probe_shift, cfg.probe_shift + 1, (2,), generator=g)).tolist()
                y = min(max(ys + dy, 0), h - size)
                x = min(max(xs + dx, x0), w - size)
                k = int(torch.randint(0, 8, (), generator=g))
                tiles.append(dihedral(image[:, y : y + size, x : x + size], k))
                labels.append(label)
        batch = torch.stack(tiles).float() / 255
        batch = jitter(batch, generator=g).float()
        names = [f"tile y={ys} x={xs}" for ys, xs in chosen]
        splits.append(LabeledSplit(batch, torch.tensor(labels), names))
    return splits[0], splits[1], x0


def _scan_folder(root: Path) -> tuple[list[Path], list[int], list[str]]:
    """Tile files of ``root`` (flat: label -1) and of its ``<class>/`` subfolders (one label per subfolder)."""

    def images_in(folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in TILE_SUFFIXES)

    paths, labels = images_in(root), []
    labels = [-1] * len(paths)
    class_names = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        found = images_in(sub)
        if found:
            labels += [len(class_names)] * len(found)
            class_names.append(sub.name)
            paths += found
    return paths, labels, class_names


def load_tile_folder(cfg: MedicalDataConfig, size: int) -> DataBundle:
    """A user folder of tiles (see the module docstring); every file is opened to check that it is readable and
    at least ``size`` pixels on each side."""
    root = Path(str(cfg.path)).expanduser()
    if not root.is_dir():
        raise DataError(f"{root} is not a folder of tiles; give a folder of PNG/JPG/TIFF tiles or data.path=pathology")
    paths, labels, class_names = _scan_folder(root)
    if not paths:
        raise DataError(
            f"{root} holds no tile images ({', '.join(TILE_SUFFIXES)}), neither directly nor in <class>/ subfolders"
        )
    for p in paths:
        img = _open(p)
        _check_mode(img, p)
        if min(img.size) < size:
            raise DataError(
                f"the tile {p} is {img.size[0]}x{img.size[1]} pixels, smaller than the tile size {size}: remove it "
                "or set a smaller data.tile_size"
            )
    n_cls = len(class_names)
    if n_cls == 1:
        raise DataError(
            f"{root} has a single class subfolder ({class_names[0]}): probes need at least 2 classes; add class "
            "folders, or put the tiles directly in the folder to pretrain without probes"
        )
    train = RandomTiles(paths, size, len(paths))
    probe_train = probe_test = None
    desc = f"{len(paths):,} tiles from {root} ({size} px random crops with flips/rotations)"
    if n_cls:
        lab = torch.tensor(labels)
        tr, te = stratified_split(lab, PROBE_TEST_FRACTION, seed=cfg.seed)
        probe_train = LabeledSplit(CenterTiles([paths[i] for i in tr], size), lab[tr], class_names)
        probe_test = LabeledSplit(CenterTiles([paths[i] for i in te], size), lab[te], class_names)
        desc += f"; probes on {n_cls} classes, {len(tr):,} / {len(te):,} centre-cropped tiles"
    else:
        desc += "; unlabelled (no class subfolders): no probes"
    return DataBundle(
        train=train,
        info=TileInfo(size=size),
        description=desc,
        probe_train=probe_train,
        probe_test=probe_test,
        raw_features=pooled_pixels,
        extra_baselines={"stain_stats": stain_stats},
    )


def load_tile_data(cfg: MedicalDataConfig) -> DataBundle:
    """Tiles for pretraining and probing: ``cfg.path == "pathology"`` gives the IHC image's tiles and its
    stain-robust identification probe; a folder path gives its tiles (see the module docstring).

    Args:
        cfg: the data configuration (``tile_size``, ``tiles_per_epoch``, ``probe_*``, ``seed``).

    Returns:
        A bundle whose ``train`` items are float ``(3, tile_size, tile_size)`` tiles in ``[0, 1]`` and whose
        ``info`` is :class:`~ssl_medical.info.TileInfo`.

    Raises:
        DataError: an empty folder, an unreadable image, a tile smaller than ``tile_size``.
        ConfigError: probe settings the image cannot hold.
    """
    size = int(cfg.tile_size)
    if size < 8:
        raise ConfigError(f"data.tile_size must be at least 8 pixels, got {size}")
    if str(cfg.path) != "pathology":
        return load_tile_folder(cfg, size)
    if cfg.tiles_per_epoch < 1:
        raise ConfigError(f"data.tiles_per_epoch must be positive, got {cfg.tiles_per_epoch}")
    image = ihc_image()
    probe_train, probe_test, x0 = identification_probe(image, cfg, size)
    sigma, bias = (float(v) for v in cfg.probe_stain)
    return DataBundle(
        train=RandomTiles([image], size, cfg.tiles_per_epoch, width=x0),
        info=TileInfo(size=size),
        description=(
            f"scikit-image's IHC image (512x512): {cfg.tiles_per_epoch:,} random {size}-px tiles per epoch from "
            f"columns 0-{x0 - 1}; probe: identify {cfg.probe_tiles} held-out source tiles (columns {x0}-"
            f"{image.shape[2] - 1}) through stain jitter (sigma {sigma}, bias {bias}), rotations/flips and shifts "
            f"up to {cfg.probe_shift} px, {cfg.probe_variants} variants per tile in each split"
        ),
        probe_train=probe_train,
        probe_test=probe_test,
        raw_features=pooled_pixels,
        extra_baselines={"stain_stats": stain_stats},
    )

"""The Colin27 MRI (``ch2``) and the AAL atlas of Debian's ``mricron-data``, and the AAL region probe.

Both files share one grid: 181 x 217 x 181 voxels of 1 mm, RAS, affine ``diag(1, 1, 1)`` with origin
``(-90, -125, -71)``, so voxel ``i`` of axis 0 lies at ``x = i - 90`` mm and ``180 - i`` is its exact left-right
mirror. AAL numbers 116 regions: 54 left ones (odd ids, ``*_L``), 54 right ones (``left id + 1``, ``*_R``) and 8
midline ``Vermis_*`` regions (109..116) without a side.

The region probe (:func:`region_probe_splits`) merges each left region with its right twin into one class
(54 classes, the vermis left out): it fits on patches centred in left regions and is scored on patches centred in
the matching right regions, so a representation scores by recognising mirrored anatomy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ssl_core.data import LabeledSplit
from ssl_core.errors import DataError

TEMPLATES = Path("/usr/share/mricron/templates")
INSTALL = (
    "install the Debian package mricron-data (`sudo apt-get install mricron-data`, or run ./scripts/setup.sh), "
    "or point SELFSUP_MRICRON_TEMPLATES at a folder holding ch2.nii.gz, aal.nii.gz and aal.nii.txt"
)
VERMIS_FIRST = 109  # AAL ids 109..116 are the midline vermis: no side, left out of the region classes


def templates_dir() -> Path:
    """The folder of the mricron templates: ``$SELFSUP_MRICRON_TEMPLATES`` or ``/usr/share/mricron/templates``."""
    return Path(os.environ.get("SELFSUP_MRICRON_TEMPLATES") or TEMPLATES)


@dataclass
class Atlas:
    """The Colin27 T1 MRI with the AAL labels on its grid.

    Args:
        image: the MRI divided by its maximum, float32 in ``[0, 1]``.
        labels: the AAL region id of every voxel (0: background), int16.
        names: region id -> AAL name (``1: "Precentral_L"``, ...).
        affine: voxel -> RAS world (mm), 4 x 4.

    Shapes:
        - image, labels: ``(181, 217, 181)`` (x, y, z)
    """

    image: np.ndarray
    labels: np.ndarray
    names: dict[int, str]
    affine: np.ndarray

    def region_classes(self) -> list[tuple[int, int, str]]:
        """The merged left/right region classes, in class order: ``(left id, right id, name without _L)``.

        AAL's left regions have odd ids and ``_L`` names, each right twin is ``left id + 1`` with ``_R``; the
        vermis (ids >= 109) has no side and is left out. The AAL atlas gives 54 classes.

        Raises:
            DataError: a left region whose twin is missing from the name table.
        """
        out = []
        for lid in sorted(self.names):
            name = self.names[lid]
            if lid >= VERMIS_FIRST or not name.endswith("_L"):
                continue
            twin = self.names.get(lid + 1)
            if twin != name[:-2] + "_R":
                raise DataError(f"AAL region {lid} {name!r} has no right twin {lid + 1} (found {twin!r}); {INSTALL}")
            out.append((lid, lid + 1, name[:-2]))
        return out

    def class_map(self) -> np.ndarray:
        """The merged region class of every voxel (:meth:`region_classes` order), ``-1`` for background and
        vermis; left and right twins share a class.

        Shapes:
            - output: ``labels.shape``, int16
        """
        lut = np.full(int(self.labels.max()) + 1, -1, dtype=np.int16)
        for c, (lid, rid, _) in enumerate(self.region_classes()):
            lut[lid] = lut[rid] = c
        return lut[self.labels]


def _read_nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The array (as stored, e.g. uint8) and affine of a NIfTI file, read with nibabel."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
        return np.asanyarray(img.dataobj), np.asarray(img.affine, dtype=np.float64)
    except Exception as e:  # nibabel raises many kinds on a damaged file
        raise DataError(f"cannot read {path} ({type(e).__name__}: {e}); reinstall it: {INSTALL}") from e


def load_atlas(root: str | Path | None = None) -> Atlas:
    """Read ``ch2.nii.gz``, ``aal.nii.gz`` and ``aal.nii.txt`` (about 0.2 s).

    Args:
        root: the templates folder (default :func:`templates_dir`).

    Raises:
        DataError: a file is missing (naming the Debian package), or the two volumes are not on one grid.
    """
    root = Path(root) if root is not None else templates_dir()
    files = [root / "ch2.nii.gz", root / "aal.nii.gz", root / "aal.nii.txt"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise DataError(f"the MRI atlas is missing ({', '.join(missing)}); {INSTALL}")
    image, affine = _read_nifti(files[0])
    labels, aal_affine = _read_nifti(files[1])
    if image.shape != labels.shape or not np.allclose(affine, aal_affine, atol=1e-4):
        raise DataError(f"{files[0]} {image.shape} and {files[1]} {labels.shape} are not on one grid; {INSTALL}")
    names = {}
    for line in files[2].read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            names[int(parts[0])] = parts[1]
    image = image.astype(np.float32)
    image /= max(float(image.max()), 1e-8)
    return Atlas(image, labels.astype(np.int16), names, affine)


@dataclass
class ProbeCentres:
    """Where the region probe's patches are centred (voxel indices on the atlas grid) and their classes.

    Shapes:
        - train, test: ``(N, 3)`` int64 (left-region voxels, right-region voxels)
        - train_labels, test_labels: ``(N,)`` int64 in ``[0, 54)``
    """

    train: np.ndarray
    train_labels: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray


def probe_centres(atlas: Atlas, per_region: int, seed: int) -> ProbeCentres:
    """Draw ``per_region`` distinct voxels of every left region (train) and of its right twin (test),
    in class order, with ``numpy.random.default_rng(seed)``.

    Raises:
        DataError: a region holding fewer than ``per_region`` voxels.
    """
    classes = atlas.region_classes()
    flat = atlas.labels.ravel()
    order = np.argsort(flat, kind="stable")
    bounds = np.searchsorted(flat[order], np.arange(int(flat.max()) + 2))
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {"train": [], "test": [], "train_labels": [], "test_labels": []}
    for c, (lid, rid, name) in enumerate(classes):
        for side, rid_ in (("train", lid), ("test", rid)):
            voxels = order[bounds[rid_] : bounds[rid_ + 1]]
            if len(voxels) < per_region:
                raise DataError(
                    f"AAL region {rid_} ({name}) has {len(voxels)} voxels, fewer than data.probe_per_region="
                    f"{per_region}; lower it"
                )
            pick = np.sort(rng.choice(len(voxels), per_region, replace=False))
            out[side].append(np.stack(np.unravel_index(voxels[pick], atlas.labels.shape), 1))
            out[side + "_labels"].append(np.full(per_region, c, dtype=np.int64))
    return ProbeCentres(**{k: np.concatenate(v) for k, v in out.items()})


def extract_patches(volume: np.ndarray, centres: np.ndarray, size: int) -> np.ndarray:
    """Cubic patches of ``volume`` with side ``size``, zero padded at the borders; voxel ``c`` sits at index
    ``size // 2`` of its patch (the patch spans ``c - size // 2 .. c - size // 2 + size - 1``).

    Shapes:
        - volume: ``(X, Y, Z)``; centres: ``(N, 3)``; output: ``(N, size, size, size)``, volume's dtype
    """
    h = size // 2
    padded = np.pad(volume, size, mode="constant")
    out = np.empty((len(centres), size, size, size), dtype=volume.dtype)
    for i, (x, y, z) in enumerate(np.asarray(centres) + size - h):
        out[i] = padded[x : x + size, y : y + size, z : z + size]
    return out


def region_probe_splits(atlas: Atlas, cfg) -> tuple[LabeledSplit, LabeledSplit]:
    """The AAL region probe: ``cfg.probe_per_region`` patches of ``cfg.probe_patch``^3 centred on random voxels
    of each left region (train) and of its right twin (test), labelled with their merged class (54 classes).

    With ``cfg.probe_mirror`` every test patch is that of the left-right mirrored MRI (axis 0 flipped, voxel
    ``i`` -> ``X - 1 - i``, the exact mirror about ``x = 0`` on this grid) centred on the mirrored voxel, i.e. the
    test patch flipped on axis 0 with its window shifted by one voxel, so that mirrored anatomy lines up voxel
    for voxel (a bare ``patch[::-1]`` would be off by one voxel for an even side). Otherwise right patches are
    scored as they are (the probe then also measures left-right invariance).

    Not cached: building the splits takes about 1.5 s, no longer than reading them back from an npz.

    Args:
        atlas: :func:`load_atlas`'s atlas.
        cfg: a :class:`~ssl_medical.data.config.MedicalDataConfig` (``probe_patch``, ``probe_per_region``,
            ``probe_mirror``, ``seed``).

    Returns:
        ``(probe_train, probe_test)``: inputs are float32 tensors ``(N, 1, P, P, P)``, ``N = 54 *
        probe_per_region``; class names are the region names without ``_L``.
    """
    size, per, mirror, seed = int(cfg.probe_patch), int(cfg.probe_per_region), bool(cfg.probe_mirror), int(cfg.seed)
    if size < 1 or per < 1:
        raise DataError(f"data.probe_patch={size} and data.probe_per_region={per} must both be >= 1")
    names = [n for _, _, n in atlas.region_classes()]
    cen = probe_centres(atlas, per, seed)
    arrays = {
        "train": extract_patches(atlas.image, cen.train, size),
        "train_labels": cen.train_labels,
        "test_labels": cen.test_labels,
    }
    if mirror:
        mirrored = cen.test.copy()
        mirrored[:, 0] = atlas.image.shape[0] - 1 - mirrored[:, 0]
        arrays["test"] = extract_patches(np.ascontiguousarray(atlas.image[::-1]), mirrored, size)
    else:
        arrays["test"] = extract_patches(atlas.image, cen.test, size)
    return _splits(arrays, names)


def _splits(arrays: dict[str, np.ndarray], names: list[str]) -> tuple[LabeledSplit, LabeledSplit]:
    return tuple(
        LabeledSplit(
            torch.from_numpy(np.ascontiguousarray(arrays[k], dtype=np.float32)).unsqueeze(1),
            torch.from_numpy(arrays[k + "_labels"].astype(np.int64)),
            names,
        )
        for k in ("train", "test")
    )

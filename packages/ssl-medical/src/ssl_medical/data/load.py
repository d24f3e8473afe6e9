"""``load_data``: the medical data a run pretrains and probes on.

``data.path`` picks the data (see :class:`~ssl_medical.data.config.MedicalDataConfig`):

- ``None`` / ``"mri"``: random patches of the Colin27 MRI (:mod:`ssl_medical.data.atlas`);
- ``"ct"``: random patches of the InVesalius head CT in a Hounsfield window (:mod:`ssl_medical.data.ct`);
- a NIfTI file, a DICOM series folder, or a folder of them (:mod:`ssl_medical.data.volumes`);
- ``"ecg5000"``, ``"ucr:<NAME>"``, ``"ecg_dicom:<file>"``: :func:`ssl_medical.data.signals.load_signal_data`;
- ``"pathology"``, or a folder of PNG / JPG / TIFF tiles: :func:`ssl_medical.data.tiles.load_tile_data`.

A volume bundle: ``train`` is a :class:`~ssl_medical.data.volumes.PatchDataset` of ``data.patches_per_epoch``
float32 ``(1, *patch_size)`` patches in ``[0, 1]``; ``info`` a :class:`~ssl_medical.info.VolumeInfo`;
``probe_train`` / ``probe_test`` the AAL region probe (:func:`~ssl_medical.data.atlas.region_probe_splits`:
float32 ``(N, 1, P, P, P)`` patches of the MRI, 54 classes, left hemisphere -> right hemisphere) for every volume
data set, the CT and user volumes included (skipped with a warning when mricron-data is missing, except for the
MRI itself, which needs it); ``raw_features`` the flattened patch; ``extra_probes`` ``{"fewshot_dice": ...}`` from
:mod:`ssl_medical.probes.segmentation` when ``data.fewshot_seg`` is on.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from ssl_core.data import DataBundle, flatten_features
from ssl_core.errors import DataError
from ssl_medical.data.config import MedicalDataConfig
from ssl_medical.info import VolumeInfo

SIGNAL_PREFIXES = ("ucr:", "ecg_dicom:")
TILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def load_data(cfg: MedicalDataConfig) -> DataBundle:
    """Load the data ``cfg.path`` names (see the module docstring).

    Raises:
        DataError: missing Debian data (naming the package), unreadable or unsuitable volumes (see
            :mod:`ssl_medical.data.volumes`), or a path that is none of the above.
    """
    path = cfg.path
    key = str(path).lower() if path is not None else "mri"
    if key == "ecg5000" or key.startswith(SIGNAL_PREFIXES):
        from ssl_medical.data.signals import load_signal_data

        return load_signal_data(cfg)
    if key == "pathology" or (key not in ("mri", "ct") and _is_tile_folder(Path(str(path)).expanduser())):
        from ssl_medical.data.tiles import load_tile_data

        return load_tile_data(cfg)
    if key == "mri":
        return _mri_bundle(cfg)
    if key == "ct":
        return _ct_bundle(cfg)
    return _user_bundle(cfg)


def _is_tile_folder(p: Path) -> bool:
    """A folder holding no volumes but image tiles (directly or in ``<class>/`` subfolders)."""
    from ssl_medical.data.dicom import looks_like_series
    from ssl_medical.data.volumes import is_nifti

    if not p.is_dir() or looks_like_series(p):
        return False
    entries = list(p.iterdir())
    if any((q.is_file() and is_nifti(q)) or (q.is_dir() and looks_like_series(q)) for q in entries):
        return False
    subs = [p] + [q for q in entries if q.is_dir()]
    return any(f.is_file() and f.suffix.lower() in TILE_SUFFIXES for s in subs for f in s.iterdir())


def _probes(cfg: MedicalDataConfig, required: bool):
    """``(atlas, probe_train, probe_test, description)``; ``(None, None, None, reason)`` when the atlas is
    missing and not ``required`` (with a warning)."""
    from ssl_medical.data.atlas import load_atlas, region_probe_splits

    try:
        atlas = load_atlas()
    except DataError as e:
        if required:
            raise
        warnings.warn(f"no region probe: {e}", stacklevel=3)
        return None, None, None, "no probes (the MRI atlas of mricron-data is missing)"
    tr, te = region_probe_splits(atlas, cfg)
    side = cfg.probe_patch
    desc = (
        f"AAL region probe: {len(tr.class_names)} classes, {len(tr.labels):,} left-hemisphere / {len(te.labels):,} "
        f"right-hemisphere patches of {side}^3 ({'mirrored' if cfg.probe_mirror else 'not mirrored'})"
    )
    return atlas, tr, te, desc


def _extra_probes(atlas, cfg: MedicalDataConfig) -> dict:
    """``{"fewshot_dice": ...}`` (:func:`ssl_medical.probes.segmentation.fewshot_dice_probe`) when the atlas is there
    and ``cfg.fewshot_seg`` is on."""
    if atlas is None or not cfg.fewshot_seg:
        return {}
    from ssl_medical.probes.segmentation import fewshot_dice_probe

    return {"fewshot_dice": fewshot_dice_probe(atlas, cfg)}


def _bundle(cfg, train, spacing, desc: str, required_probes: bool) -> DataBundle:
    atlas, tr, te, probe_desc = _probes(cfg, required_probes)
    return DataBundle(
        train=train,
        info=VolumeInfo(patch_size=tuple(cfg.patch_size), channels=1, spacing=tuple(spacing)),
        description=f"{desc}; {probe_desc}",
        probe_train=tr,
        probe_test=te,
        raw_features=flatten_features,
        extra_probes=_extra_probes(atlas, cfg),
    )


def _patches(cfg) -> str:
    return f"{cfg.patches_per_epoch:,} random {'x'.join(map(str, cfg.patch_size))} patches per epoch"


def _mri_bundle(cfg: MedicalDataConfig) -> DataBundle:
    from ssl_medical.data.atlas import load_atlas
    from ssl_medical.data.volumes import InMemoryVolume, PatchDataset

    atlas = load_atlas()
    train = PatchDataset([InMemoryVolume(atlas.image, cfg.patch_size, "ch2.nii.gz", cfg.seed)], cfg.patches_per_epoch)
    desc = f"Colin27 T1 MRI (mricron-data, {'x'.join(map(str, atlas.image.shape))}, 1 mm): {_patches(cfg)}"
    return _bundle(cfg, train, (1.0, 1.0, 1.0), desc, required_probes=True)


def ct_array(cfg: MedicalDataConfig) -> np.ndarray:
    """The windowed, resampled head CT (:func:`ssl_medical.data.ct.ct_volume`) as float32 ``(X, Y, Z)``,
    cached under ``cfg.cache()`` as ``.npy`` (written atomically; keyed by window, spacing and the file's size
    and time), since building it takes ~10-30 s on busy cores."""
    from ssl_medical.data.ct import CRANIUM, ct_volume, read_inv3

    if not CRANIUM.is_file():
        read_inv3(CRANIUM)  # raises the DataError naming the package
    st = CRANIUM.stat()
    tag = "_".join(f"{v:g}" for v in (*cfg.ct_window, *cfg.spacing))
    cache = cfg.cache() / f"cranium_{tag}_{st.st_size}_{int(st.st_mtime)}.npy"
    if cache.is_file():
        try:
            return np.load(cache)
        except (OSError, ValueError):
            pass  # damaged: rebuilt below
    vol = np.ascontiguousarray(ct_volume(cfg, CRANIUM).array[0], dtype=np.float32)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, vol)
        os.replace(tmp, cache)
    except OSError as e:
        warnings.warn(f"could not cache the CT in {cache} ({e})", stacklevel=2)
    return vol


def _ct_bundle(cfg: MedicalDataConfig) -> DataBundle:
    from ssl_medical.data.volumes import InMemoryVolume, PatchDataset

    vol = ct_array(cfg)
    train = PatchDataset([InMemoryVolume(vol, cfg.patch_size, "Cranium.inv3", cfg.seed)], cfg.patches_per_epoch)
    lo, hi = cfg.ct_window
    desc = (
        f"InVesalius head CT (invesalius-examples, Cranium.inv3, window {lo:g}..{hi:g} HU, "
        f"{'x'.join(map(str, vol.shape))} at {'x'.join(f'{s:g}' for s in cfg.spacing)} mm): {_patches(cfg)}"
    )
    return _bundle(cfg, train, cfg.spacing, desc, required_probes=False)


def _user_bundle(cfg: MedicalDataConfig) -> DataBundle:
    from ssl_medical.data.volumes import volume_dataset

    if not Path(str(cfg.path)).expanduser().exists():
        raise DataError(
            f"data.path={cfg.path!r} is neither a data set (mri, ct, ecg5000, ucr:<NAME>, ecg_dicom:<file>, "
            "pathology) nor an existing file or folder (NIfTI files, DICOM series folders, image tiles)"
        )
    train, lines = volume_dataset(str(cfg.path), cfg)
    shown = ", ".join(lines[:3]) + (f", ... ({len(lines)} volumes)" if len(lines) > 3 else "")
    desc = f"{cfg.path}: {shown}; {_patches(cfg)}"
    return _bundle(cfg, train, cfg.spacing, desc, required_probes=False)

"""User volumes (NIfTI files, DICOM series folders) and :class:`PatchDataset`, the random 3-D patches that every
volume recipe pretrains on.

``--data PATH`` may be a ``.nii`` / ``.nii.gz`` file, a DICOM series folder, or a folder of several NIfTI files
and / or series folders (one volume each). Every volume is read with MONAI ``LoadImage`` (``NibabelReader``,
``PydicomReader``), ``EnsureChannelFirst``, ``Orientation("RAS")`` and ``Spacing(data.spacing)`` (bilinear; an
anisotropic volume is thereby resampled to the isotropic default of 1 mm), then scaled to ``[0, 1]``: a DICOM CT
through the Hounsfield window ``data.ct_window``, anything else between its 0.5th and 99.5th percentiles
(clipped), since a NIfTI file does not say whether it holds HU.

Bad input, and what happens (each case is tested):

- a 2-D image (2-D NIfTI, a single DICOM slice): ``DataError``, a 3-D volume is expected;
- a 4-D NIfTI holding one volume (``X, Y, Z, 1``, as some tools write): the singleton axis is dropped; several
  volumes (time series, vector images): ``DataError`` asking to split it into 3-D files (``fslsplit``);
- NaN or infinite voxels: ``DataError`` (:func:`ssl_core.data.check_finite`);
- a damaged or truncated file: ``DataError`` naming the file;
- a DICOM folder with non-DICOM files, or with several series: see :mod:`ssl_medical.data.dicom` (skipped with a
  warning; ``DataError`` listing the series);
- a volume smaller than the patch along any axis (after resampling): ``DataError`` naming both sizes and the fix
  (``data.patch_size``): padding would train on mostly empty patches in silence;
- a volume larger than ``data.max_in_memory_mb`` (as float32): **streamed** from an uncompressed ``.nii`` through
  nibabel's memory-mapped ``dataobj``, patch by patch, on its own voxel grid (reoriented to RAS patch by patch, but
  not resampled: a warning says so when its spacing differs from ``data.spacing``), scaled with percentiles of a
  strided subsample; a compressed ``.nii.gz`` or a DICOM series that large: ``DataError`` (decompress it /
  raise the limit).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ssl_core.data import check_finite
from ssl_core.errors import DataError

NIFTI_SUFFIXES = (".nii", ".nii.gz")
FOREGROUND = 0.1  # patches are centred on voxels above this (of [0, 1]): tissue, not air
MAX_CENTRES = 100_000  # candidate patch centres kept per volume
PERCENTILES = (0.5, 99.5)
SUBSAMPLE_VOXELS = 2_000_000  # voxels read to scale and find foreground in a streamed volume


def is_nifti(path: Path) -> bool:
    """Whether ``path`` is named like a NIfTI file."""
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def find_volumes(path: str | Path) -> list[Path]:
    """The volumes ``path`` names: a NIfTI file; a DICOM series folder; or a folder of NIfTI files and series
    folders (one level deep), in name order.

    Raises:
        DataError: nothing readable there.
    """
    from ssl_medical.data.dicom import is_dicom, looks_like_series

    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p} does not exist")
    if p.is_file():
        if is_nifti(p):
            return [p]
        if is_dicom(p):
            raise DataError(f"{p} is one DICOM file (a 2-D slice); give the folder holding every slice of its series")
        raise DataError(f"{p} is neither a NIfTI file (.nii, .nii.gz) nor a folder of volumes")
    if looks_like_series(p):
        return [p]
    found = sorted(q for q in p.iterdir() if (q.is_file() and is_nifti(q)) or (q.is_dir() and looks_like_series(q)))
    if not found:
        raise DataError(f"{p} holds no NIfTI files (.nii, .nii.gz) and no DICOM series folders")
    return found


def nifti_header(path: Path) -> tuple[tuple[int, ...], np.ndarray, tuple[float, ...]]:
    """Shape (trailing singleton axes beyond the third dropped), affine and zooms of a NIfTI file, from its
    header alone.

    Raises:
        DataError: unreadable, 2-D, or several volumes along a fourth axis.
    """
    import nibabel as nib

    try:
        img = nib.load(str(path))
    except Exception as e:
        raise DataError(f"cannot read {path} ({type(e).__name__}: {e}); is it a valid NIfTI file?") from e
    shape = tuple(int(s) for s in img.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) < 3:
        raise DataError(f"{path} is a {len(shape)}-D image {img.shape}; a 3-D volume is expected")
    if len(shape) > 3:
        raise DataError(
            f"{path} holds {math.prod(shape[3:])} volumes {img.shape} (a time series or vector image); a single 3-D "
            "volume is expected: split it into 3-D files (e.g. `fslsplit`) and give their folder"
        )
    return shape, np.asarray(img.affine, dtype=np.float64), tuple(float(z) for z in img.header.get_zooms()[:3])


def _scale(x: np.ndarray | torch.Tensor, lo: float, hi: float):
    """``(x - lo) / (hi - lo)`` clipped to ``[0, 1]`` (``0`` everywhere for a constant volume)."""
    span = hi - lo if hi > lo else 1.0
    return ((x - lo) / span).clip(0.0, 1.0)


def load_volume(path: str | Path, cfg) -> np.ndarray:
    """Read one volume into memory, RAS, resampled to ``cfg.spacing`` and scaled to ``[0, 1]`` (module docstring).

    Returns:
        float32 ``(X, Y, Z)``.

    Raises:
        DataError: see the module docstring.
    """
    from monai.transforms import EnsureChannelFirst, Orientation, Spacing

    from ssl_medical.data.dicom import load_series, scan_series
    from ssl_medical.data.readers import ORIENTATION_LABELS, load_image

    path = Path(path)
    window = None
    if path.is_dir():
        series = scan_series(path)
        img = load_series(series)
        if series.modality.upper() == "CT":
            window = tuple(float(v) for v in cfg.ct_window)
        if img.ndim != 3:
            raise DataError(f"{path}: the DICOM series reads as {tuple(img.shape)}; a 3-D volume is expected")
        img = img[None]
    else:
        shape, _, _ = nifti_header(path)
        try:
            img = load_image("NibabelReader")(str(path))
        except Exception as e:
            raise DataError(f"cannot read {path} ({type(e).__name__}: {e}); is the file complete?") from e
        img = img.reshape(shape) if tuple(img.shape) != shape else img
        img = EnsureChannelFirst(channel_dim="no_channel")(img)
    img = img.float()
    check_finite(img.as_tensor() if hasattr(img, "as_tensor") else img, str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        img = Orientation(axcodes="RAS", labels=ORIENTATION_LABELS)(img)
        img = Spacing(pixdim=tuple(cfg.spacing), mode="bilinear")(img)
    vol = np.asarray(img.array if hasattr(img, "array") else img, dtype=np.float32)[0]
    if window is None:
        window = tuple(float(v) for v in np.percentile(vol, PERCENTILES))
    return np.ascontiguousarray(_scale(vol, *window), dtype=np.float32)


def _check_size(shape: tuple[int, ...], patch: tuple[int, ...], name: str) -> None:
    if any(s < p for s, p in zip(shape, patch, strict=True)):
        raise DataError(
            f"{name} is {tuple(shape)} voxels, smaller than data.patch_size={tuple(patch)} along some axis; "
            "lower data.patch_size (or give a larger volume, or a smaller data.spacing)"
        )


def _centres(mask_idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Up to ``MAX_CENTRES`` rows of ``mask_idx`` drawn without replacement, int32."""
    if len(mask_idx) > MAX_CENTRES:
        mask_idx = mask_idx[np.sort(rng.choice(len(mask_idx), MAX_CENTRES, replace=False))]
    return np.ascontiguousarray(mask_idx, dtype=np.int32)


class InMemoryVolume:
    """A volume held in memory, with the candidate centres of its patches (voxels above :data:`FOREGROUND`).

    Args:
        volume: float32 ``(X, Y, Z)`` in ``[0, 1]``.
        patch_size: ``(D, H, W)``.
        name: shown in errors.
        seed: draws the candidate centres.
    """

    def __init__(self, volume: np.ndarray, patch_size: tuple[int, int, int], name: str = "volume", seed: int = 0):
        if volume.ndim != 3:
            raise DataError(f"{name} has shape {volume.shape}; a 3-D volume is expected")
        _check_size(volume.shape, patch_size, name)
        self.volume, self.patch_size, self.name = volume, tuple(patch_size), name
        rng = np.random.default_rng(seed)
        fg = np.flatnonzero(volume > FOREGROUND)
        if len(fg) == 0:  # an empty (or constant) volume: any voxel
            fg = np.arange(volume.size)
        if len(fg) > MAX_CENTRES:
            fg = fg[np.sort(rng.choice(len(fg), MAX_CENTRES, replace=False))]
        self.centres = np.stack(np.unravel_index(fg, volume.shape), 1).astype(np.int32)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Voxels ``(X, Y, Z)``."""
        return tuple(self.volume.shape)

    def read(self, start: tuple[int, int, int]) -> np.ndarray:
        """The patch starting at voxel ``start`` (a copy)."""
        sl = tuple(slice(s, s + p) for s, p in zip(start, self.patch_size, strict=True))
        return np.array(self.volume[sl], dtype=np.float32)


class StreamedVolume:
    """A NIfTI volume too large for memory, read patch by patch through nibabel's memory-mapped ``dataobj``.

    Patches are taken on the file's own voxel grid (not resampled), each reoriented to RAS (axes permuted and
    flipped as ``nibabel.as_closest_canonical`` would), and scaled with the 0.5th / 99.5th percentiles of a strided
    subsample of about :data:`SUBSAMPLE_VOXELS` voxels, which also gives the candidate centres (subsample voxels
    above :data:`FOREGROUND`, each with a random offset inside its stride).

    Args:
        path: an uncompressed ``.nii``.
        patch_size: ``(D, H, W)`` in RAS axis order.
        seed: draws the candidate centres.

    Raises:
        DataError: a compressed file, a bad shape, non-finite values in the subsample, or a volume smaller than
            the patch.
    """

    def __init__(self, path: str | Path, patch_size: tuple[int, int, int], seed: int = 0):
        import nibabel as nib

        self.path, self.patch_size = Path(path), tuple(int(p) for p in patch_size)
        self.name = str(self.path)
        if not self.path.name.lower().endswith(".nii"):
            raise DataError(
                f"{path} is too large to load (data.max_in_memory_mb) and compressed, so it cannot be streamed: "
                "decompress it (`gunzip`) to stream it, or raise data.max_in_memory_mb"
            )
        shape, affine, zooms = nifti_header(self.path)
        self.native_shape, self.zooms = shape, zooms
        self.ornt = nib.orientations.io_orientation(affine)  # native axis i -> RAS axis ornt[i, 0], flip ornt[i, 1]
        # native size of the box that becomes a RAS patch of patch_size
        self.box = tuple(self.patch_size[int(self.ornt[i, 0])] for i in range(3))
        _check_size(shape, self.box, self.name)
        stride = max(1, round((math.prod(shape) / SUBSAMPLE_VOXELS) ** (1 / 3)))
        sub = np.asarray(self._data()[::stride, ::stride, ::stride], dtype=np.float32)
        check_finite(sub, self.name)
        self.lo, self.hi = (float(v) for v in np.percentile(sub, PERCENTILES))
        rng = np.random.default_rng(seed)
        fg = np.argwhere(_scale(sub, self.lo, self.hi) > FOREGROUND)
        if len(fg) == 0:
            fg = np.argwhere(np.ones(sub.shape, dtype=bool))
        fg = _centres(fg, rng).astype(np.int64) * stride + rng.integers(0, stride, (min(len(fg), MAX_CENTRES), 3))
        self.centres = np.minimum(fg, np.array(shape) - 1).astype(np.int32)

    def _data(self):
        """The image's array proxy (memory-mapped), opened once per process (also in each DataLoader worker)."""
        if getattr(self, "_proxy", None) is None:
            import nibabel as nib

            self._proxy = nib.load(str(self.path), mmap=True).dataobj
        return self._proxy

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_proxy"] = None  # workers open the file themselves; never pickle the mapped array
        return state

    @property
    def shape(self) -> tuple[int, int, int]:
        """Voxels along the native axes."""
        return self.native_shape

    def read(self, start: tuple[int, int, int]) -> np.ndarray:
        """The native box starting at ``start`` (size :attr:`box`), read from disk, reoriented to RAS and scaled:
        a float32 ``patch_size`` array."""
        import nibabel as nib

        sl = tuple(slice(s, s + b) for s, b in zip(start, self.box, strict=True))
        raw = np.asarray(self._data()[sl], dtype=np.float32)
        while raw.ndim > 3:
            raw = raw[..., 0]
        check_finite(raw, self.name)
        out = nib.orientations.apply_orientation(raw, self.ornt)
        return np.ascontiguousarray(_scale(out, self.lo, self.hi), dtype=np.float32)


class PatchDataset(Dataset):
    """Random ``(1, *patch_size)`` patches of one or more volumes: ``length`` items, each a fresh draw.

    Each item picks a volume uniformly, one of its candidate centres (foreground voxels, so patches are not empty
    air), and the patch around it, shifted inside the volume at the borders. The randomness comes from torch's
    global generator in :meth:`__getitem__` (the trainer seeds it per sample and in every worker). Only the patch
    is copied: a sample never holds a whole volume.

    Args:
        volumes: :class:`InMemoryVolume` / :class:`StreamedVolume` objects with one patch size.
        length: items per epoch (``data.patches_per_epoch``).

    Shapes:
        - item: float32 ``(1, D, H, W)``
    """

    def __init__(self, volumes: list, length: int):
        if not volumes:
            raise DataError("no volumes to draw patches from")
        if length < 1:
            raise DataError(f"data.patches_per_epoch={length} must be >= 1")
        self.volumes, self.length = list(volumes), int(length)
        self.patch_size = self.volumes[0].patch_size

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        vol = self.volumes[int(torch.randint(len(self.volumes), ()))] if len(self.volumes) > 1 else self.volumes[0]
        centre = vol.centres[int(torch.randint(len(vol.centres), ()))]
        box = getattr(vol, "box", vol.patch_size)
        start = tuple(int(min(max(int(c) - b // 2, 0), s - b)) for c, b, s in zip(centre, box, vol.shape, strict=True))
        return torch.from_numpy(vol.read(start)).unsqueeze(0)


def volume_dataset(path: str | Path, cfg) -> tuple[PatchDataset, list[str]]:
    """The :class:`PatchDataset` of the user volumes at ``path`` (see the module docstring), and one line per
    volume (name, shape, in memory or streamed)."""
    volumes, lines = [], []
    limit = float(cfg.max_in_memory_mb) * 2**20
    for i, p in enumerate(find_volumes(path)):
        if p.is_file():
            shape, _, zooms = nifti_header(p)
            est = (
                math.prod(shape) * 4 * math.prod(z / s for z, s in zip(zooms, cfg.spacing, strict=True))
            )  # float32 at cfg.spacing
            if max(math.prod(shape) * 4, est) > limit:
                vol = StreamedVolume(p, cfg.patch_size, cfg.seed + i)
                if not np.allclose(zooms, cfg.spacing, rtol=0.05):
                    warnings.warn(
                        f"{p} is streamed on its own grid ({', '.join(f'{z:g}' for z in zooms)} mm), not resampled "
                        f"to data.spacing={tuple(cfg.spacing)}",
                        stacklevel=2,
                    )
                volumes.append(vol)
                lines.append(f"{p.name} {vol.shape} streamed")
                continue
        elif 2 * sum(f.stat().st_size for f in p.iterdir() if f.is_file()) > limit:  # int16 slices -> float32
            raise DataError(
                f"the DICOM series {p} is too large for data.max_in_memory_mb={cfg.max_in_memory_mb} (only "
                "uncompressed NIfTI files are streamed): convert it to .nii, or raise data.max_in_memory_mb"
            )
        arr = load_volume(p, cfg)
        if arr.nbytes > limit:
            raise DataError(
                f"{p} is {arr.nbytes / 2**20:,.0f} MB as float32, above data.max_in_memory_mb={cfg.max_in_memory_mb}; "
                "only uncompressed NIfTI files can be streamed: convert it to .nii, or raise data.max_in_memory_mb"
            )
        volumes.append(InMemoryVolume(arr, cfg.patch_size, str(p), cfg.seed + i))
        lines.append(f"{p.name} {arr.shape}")
    return PatchDataset(volumes, cfg.patches_per_epoch), lines

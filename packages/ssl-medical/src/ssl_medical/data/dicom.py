"""DICOM series folders: checked with pydicom, then read with MONAI ``LoadImage(reader="PydicomReader")``.

What a series folder may hold, and what happens otherwise (each case is tested):

- files that are not DICOM (a ``README``, ``DICOMDIR``-less thumbnails, ...) or DICOM files without pixel data
  (a ``DICOMDIR``, a structured report): **skipped with a warning** naming them;
- slices of **several series** (``SeriesInstanceUID`` differs): a :class:`~ssl_core.errors.DataError` listing each
  series (UID, description, slice count) and asking to put each series in its own folder (then the parent folder
  loads them as several volumes);
- a single slice (a 2-D image, e.g. pydicom's ``CT_small.dcm``): a ``DataError`` saying a 3-D series of several
  slices is expected;
- slices without ``InstanceNumber`` are dropped by MONAI's reader (it sorts by it), with its warning.

MONAI applies the rescale slope / intercept (CT in Hounsfield units) and builds the affine from
``ImagePositionPatient`` / ``ImageOrientationPatient`` (converted to RAS).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from ssl_core.errors import DataError


@dataclass
class DicomSeries:
    """The DICOM files of one series folder.

    Args:
        folder: the folder.
        files: its slices (files with pixel data of one series), sorted by name.
        uid: their ``SeriesInstanceUID``.
        modality: their ``Modality`` (``"CT"``, ``"MR"``, ...; ``""`` when absent).
    """

    folder: Path
    files: list[Path]
    uid: str
    modality: str


def is_dicom(path: Path) -> bool:
    """Whether ``path`` is a DICOM part-10 file (the ``DICM`` marker after the 128-byte preamble)."""
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def looks_like_series(folder: Path) -> bool:
    """Whether ``folder`` directly holds at least one DICOM file."""
    return folder.is_dir() and any(p.is_file() and is_dicom(p) for p in folder.iterdir())


def scan_series(folder: str | Path) -> DicomSeries:
    """Check a series folder (see the module docstring) and list its slices.

    Raises:
        DataError: no DICOM slice, several series, or a single slice.
    """
    import pydicom

    folder = Path(folder)
    by_series: dict[str, list[tuple[Path, str, str]]] = {}
    skipped = []
    for p in sorted(q for q in folder.iterdir() if q.is_file()):
        if not is_dicom(p):
            skipped.append(f"{p.name} (not DICOM)")
            continue
        try:
            ds = pydicom.dcmread(p, defer_size=1024)  # pixel data stays on disk
        except Exception as e:  # a truncated or damaged header
            skipped.append(f"{p.name} (unreadable: {type(e).__name__})")
            continue
        if "PixelData" not in ds:
            skipped.append(f"{p.name} (no pixel data)")
            continue
        uid = str(ds.get("SeriesInstanceUID", ""))
        by_series.setdefault(uid, []).append((p, str(ds.get("SeriesDescription", "")), str(ds.get("Modality", ""))))
    if skipped:
        warnings.warn(f"{folder}: skipped {len(skipped)} file(s): {', '.join(skipped[:5])}", stacklevel=2)
    if not by_series:
        raise DataError(f"{folder} holds no DICOM slices with pixel data")
    if len(by_series) > 1:
        listing = "; ".join(
            f"{uid or '(no SeriesInstanceUID)'} {files[0][1]!r}: {len(files)} slices"
            for uid, files in sorted(by_series.items())
        )
        raise DataError(
            f"{folder} mixes {len(by_series)} DICOM series ({listing}); move each series into its own folder "
            "(a folder of series folders loads them as several volumes)"
        )
    uid, files = next(iter(by_series.items()))
    if len(files) < 2:
        raise DataError(
            f"{folder} holds a single DICOM slice ({files[0][0].name}): a 2-D image, but a 3-D volume is expected; "
            "give a folder with every slice of the series"
        )
    return DicomSeries(folder, [f[0] for f in files], uid, files[0][2])


def load_series(series: DicomSeries):
    """Read a checked series with MONAI ``LoadImage(reader=PydicomReader(...), image_only=True)``, restricted
    to the series' files (the skipped ones are never opened again).

    Returns:
        a MONAI ``MetaTensor`` ``(X, Y, Z)`` (rows and columns swapped to MONAI's convention, slices last, in
        the order of ``InstanceNumber``) with its RAS affine.

    Raises:
        DataError: pydicom / MONAI cannot read the pixels (naming the folder).
    """
    from monai.data import PydicomReader

    from ssl_medical.data.readers import load_image

    wanted = "|".join(re.escape(str(p)) for p in series.files)
    loader = load_image(PydicomReader(fname_regex=f"^(?:{wanted})$"))
    try:
        return loader(str(series.folder))
    except Exception as e:
        raise DataError(f"cannot read the DICOM series {series.folder} ({type(e).__name__}: {e})") from e

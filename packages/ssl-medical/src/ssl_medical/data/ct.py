"""The head CT of Debian's ``invesalius-examples``: ``Cranium.inv3``, read member by member from its tar.gz.

An ``.inv3`` file is a gzip tar holding one folder with ``main.plist`` (the matrix's ``dtype`` and ``shape`` in
``(z, y, x)`` order, the ``spacing`` in ``(x, y, z)`` order) and ``matrix.dat`` (the raw voxels, no header). Cranium
is int16 Hounsfield units, 108 x 256 x 256 (z, y, x), spacing 0.957 x 0.957 x 1.5 mm. The file carries no affine,
so :func:`read_inv3` builds one: slice 0 is the most inferior (jaw), the face points to high row indices, and the
side of the columns cannot be told from the skull; the array, transposed to ``(x, y, z)``, is taken as RAS with
the volume centred on the origin.

Cranium is a real patient CT ("ProMED CT 0051", GPL-2, (c) CTI Renato Archer): cite it, and keep derived volumes
out of the repository.
"""

from __future__ import annotations

import plistlib
import tarfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssl_core.data import check_finite
from ssl_core.errors import DataError

CRANIUM = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")
INSTALL = (
    "install the Debian package invesalius-examples (`sudo apt-get install invesalius-examples`, or run "
    "./scripts/setup.sh); a dpkg `path-exclude=/usr/share/doc/*` setting (slim Docker images) drops this file, "
    "so lift that exclusion and reinstall the package"
)


@dataclass
class CTVolume:
    """A CT volume in Hounsfield units.

    Args:
        hu: the voxels, float32 HU.
        spacing: voxel size (mm) along the array's axes (x, y, z).
        affine: voxel -> RAS world (mm), 4 x 4.

    Shapes:
        - hu: ``(X, Y, Z)``
    """

    hu: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray


def read_inv3(path: str | Path = CRANIUM) -> CTVolume:
    """Read an InVesalius ``.inv3`` project's CT without extracting it (about 1 s for Cranium).

    Raises:
        DataError: the file is missing (naming the Debian package) or is not a readable ``.inv3``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"the head CT {path} is missing; {INSTALL}")
    try:
        with tarfile.open(path, "r:*") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            if "main.plist" not in members or "matrix.dat" not in members:
                raise DataError(f"{path} holds no main.plist / matrix.dat: not an InVesalius .inv3 project")
            meta = plistlib.loads(tar.extractfile(members["main.plist"]).read())
            raw = tar.extractfile(members["matrix.dat"]).read()
    except (tarfile.TarError, OSError, EOFError, plistlib.InvalidFileException) as e:
        raise DataError(f"cannot read {path} ({type(e).__name__}: {e}); reinstall it: {INSTALL}") from e
    try:
        shape = tuple(int(s) for s in meta["matrix"]["shape"])  # (z, y, x)
        dtype = np.dtype(meta["matrix"]["dtype"])
        spacing = tuple(float(s) for s in meta["spacing"])  # (x, y, z)
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{path}: main.plist lacks matrix shape / dtype / spacing ({e})") from e
    if len(shape) != 3 or len(spacing) != 3 or len(raw) != int(np.prod(shape)) * dtype.itemsize:
        raise DataError(
            f"{path}: matrix.dat holds {len(raw):,} bytes, not the {shape} {dtype} (spacing {spacing}) of main.plist"
        )
    hu = np.frombuffer(raw, dtype=dtype).reshape(shape).transpose(2, 1, 0).astype(np.float32)  # (x, y, z)
    check_finite(hu, str(path))
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -(np.array(hu.shape) - 1) / 2 * np.array(spacing)
    return CTVolume(hu, spacing, affine)


def ct_volume(cfg, path: str | Path = CRANIUM):
    """The CT ready for patches: Hounsfield window ``cfg.ct_window`` mapped to ``[0, 1]`` (clipped; MONAI
    ``ScaleIntensityRange``), then resampled to ``cfg.spacing`` (MONAI ``Spacing``, bilinear).

    Cranium at 1 mm: ``(1, 245, 245, 162)``, about 2 s.

    Returns:
        a MONAI ``MetaTensor`` ``(1, X, Y, Z)`` float32 with its affine.
    """
    from monai.data import MetaTensor
    from monai.transforms import ScaleIntensityRange, Spacing

    lo, hi = (float(v) for v in cfg.ct_window)
    if not hi > lo:
        raise DataError(f"data.ct_window={cfg.ct_window} must be (low, high) with low < high (HU)")
    ct = read_inv3(path)
    img = MetaTensor(np.ascontiguousarray(ct.hu)[None], affine=ct.affine)
    img = ScaleIntensityRange(a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True)(img)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        img = Spacing(pixdim=tuple(cfg.spacing), mode="bilinear")(img)
    return img.clamp_(0.0, 1.0)

"""MONAI ``LoadImage`` with an explicit reader, built without its harmless nvImageCodec warnings."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

ORIENTATION_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))  # MONAI's RAS labels, given explicitly (no FutureWarning)


@contextlib.contextmanager
def quiet_monai() -> Iterator[None]:
    """Silence what building a MONAI ``LoadImage`` prints without nvImageCodec (a log line of
    ``monai.data.nvimgcodec_pydicom_plugin`` and a ``UserWarning`` of ``NvImgCodecPydicomReader``), and nothing
    else."""
    log = logging.getLogger("monai.data.nvimgcodec_pydicom_plugin")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*nvImageCodec.*")
            yield
    finally:
        log.setLevel(level)


def load_image(reader):
    """``monai.transforms.LoadImage(reader=reader, image_only=True)``, built quietly.

    Args:
        reader: a reader name (``"NibabelReader"``, ``"PydicomReader"``) or instance.
    """
    from monai.transforms import LoadImage

    with quiet_monai():
        return LoadImage(reader=reader, image_only=True)

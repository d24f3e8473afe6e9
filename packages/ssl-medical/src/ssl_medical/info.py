"""What a model needs to know about the medical samples it is given: 3-D patches, 1-D signals or 2-D tiles."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VolumeInfo:
    """The shape of the 3-D samples a volume data set yields: every sample is a ``float32`` tensor
    ``(channels, D, H, W)`` of intensities scaled into about ``[0, 1]`` (MRI: divided by the volume's maximum;
    CT: a Hounsfield window mapped to ``[0, 1]``), on a grid of ``spacing`` millimetres in RAS orientation.

    Args:
        patch_size: voxels ``(D, H, W)`` of a pretraining patch (32 each: an AAL region probe patch).
        channels: image channels (1).
        spacing: voxel size in millimetres along the three axes after resampling (1 mm).
    """

    patch_size: tuple[int, int, int] = (32, 32, 32)
    channels: int = 1
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def backbone_input(self, **extra: object) -> dict:
        """The ``input`` entry of a volume backbone's :class:`~ssl_core.method.BackboneSpec` (plus ``extra``
        keys), written into every export for its users."""
        return {
            "patch_size": list(self.patch_size),
            "channels": self.channels,
            "spacing_mm": list(self.spacing),
            "layout": "volumes (B, C, D, H, W) float32, RAS, intensities scaled to [0, 1]",
            **extra,
        }


@dataclass(frozen=True)
class SignalInfo:
    """The shape of the 1-D samples a signal data set yields: every sample is a ``float32`` tensor
    ``(channels, length)``, each channel z-normalised (zero mean, unit variance) as the UCR archive's series.

    Args:
        length: samples per series (ECG5000: 140).
        channels: leads (1 for UCR series; 12 for a 12-lead ECG).
    """

    length: int = 140
    channels: int = 1

    def backbone_input(self, **extra: object) -> dict:
        """The ``input`` entry of a signal backbone's :class:`~ssl_core.method.BackboneSpec`."""
        return {
            "length": self.length,
            "channels": self.channels,
            "layout": "signals (B, C, L) float32, z-normalised per channel",
            **extra,
        }


@dataclass(frozen=True)
class TileInfo:
    """The shape of the 2-D samples a pathology tile data set yields: every sample is a ``float32`` RGB tensor
    ``(3, size, size)`` in ``[0, 1]``.

    Args:
        size: tile side in pixels (64).
    """

    size: int = 64
    channels: int = 3

    def backbone_input(self, **extra: object) -> dict:
        """The ``input`` entry of a tile backbone's :class:`~ssl_core.method.BackboneSpec`."""
        return {
            "size": self.size,
            "channels": self.channels,
            "layout": "tiles (B, 3, H, W) float32 RGB in [0, 1]",
            **extra,
        }

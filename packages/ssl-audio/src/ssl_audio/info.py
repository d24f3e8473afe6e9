"""What a model needs to know about the audio it is given."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AudioInfo:
    """The shape of the waveforms a data set yields: every clip is mono ``float32`` in ``[-1, 1]``, resampled
    to ``sample_rate`` and cropped or zero-padded to ``num_samples``.

    Args:
        sample_rate: samples per second (16,000 for speech models).
        num_samples: samples per clip (16,000: one second).
    """

    sample_rate: int = 16_000
    num_samples: int = 16_000

    def backbone_input(self, **extra: object) -> dict:
        """The ``input`` entry of an audio backbone's :class:`~ssl_core.method.BackboneSpec` (plus ``extra``
        keys), written into every export for its users."""
        return {
            "sample_rate": self.sample_rate,
            "num_samples": self.num_samples,
            "layout": "waveform (B, T) float32 in [-1, 1]",
            **extra,
        }

    @property
    def seconds(self) -> float:
        """Clip length in seconds."""
        return self.num_samples / self.sample_rate

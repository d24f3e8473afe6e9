"""Pretext generators that go beyond views: a view with its patch mask (MAE, SimMIM)."""

from ssl_vision.pretext.masked import MaskedView

__all__ = ["MaskedView"]

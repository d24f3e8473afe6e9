"""Image methods, one file each."""

from ssl_vision.methods.simclr import SimCLR, SimCLRConfig

__all__ = ["SimCLR", "SimCLRConfig"]

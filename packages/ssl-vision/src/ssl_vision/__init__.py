"""selfsup for images: data sets, views, backbones and methods for the ``vision/<method>`` recipes."""

__version__ = "0.1.0"

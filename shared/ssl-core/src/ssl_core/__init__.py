"""selfsup core: one trainer, losses, probes, checkpoints and the ``selfsup`` command for every modality."""

from ssl_core.errors import CheckpointError, ConfigError, DataError, SelfsupError
from ssl_core.export import export_backbone, load_backbone
from ssl_core.method import BackboneSpec, Method, MethodOutput

__version__ = "0.1.0"

__all__ = [
    "BackboneSpec",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "Method",
    "MethodOutput",
    "SelfsupError",
    "export_backbone",
    "load_backbone",
]

"""Errors that mean "the user asked for something that cannot work", as opposed to a bug.

The command line prints these as one line (``selfsup: error: ...``) without a traceback, so every
message names the problem and, where there is one, the fix.
"""


class SelfsupError(Exception):
    """Base class of the errors the ``selfsup`` command reports as one line."""


class ConfigError(SelfsupError, ValueError):
    """A configuration value, override or recipe name that cannot be used."""


class DataError(SelfsupError, ValueError):
    """Input data that is missing, empty or unreadable."""


class CheckpointError(SelfsupError):
    """A run folder or checkpoint that cannot be resumed from or loaded."""

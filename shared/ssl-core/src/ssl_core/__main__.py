"""``python -m ssl_core`` (e.g. under ``torchrun -m ssl_core pretrain ...``) runs the ``selfsup`` command."""

import sys

from ssl_core.cli import main

sys.exit(main())

"""Kernels without a build step: tiled contrastive log-sum-exp and point-cloud operators.

Every operator has a pure-PyTorch (or NumPy / SciPy) path that runs anywhere and a Triton path compiled at
run time on CUDA; :mod:`ssl_core.kernels.dispatch` holds the table of implementations and the one rule
that picks among them (``impl=`` argument, then the ``SSL_CORE_KERNEL`` environment variable, then the
device, dtype and problem size).
"""

from ssl_core.kernels.contrastive import similarity_implementation, similarity_logsumexp
from ssl_core.kernels.dispatch import IMPLEMENTATIONS, Implementation, describe, select
from ssl_core.kernels.points import ball_query, chamfer_distance, farthest_point_sampling, knn

__all__ = [
    "IMPLEMENTATIONS",
    "Implementation",
    "ball_query",
    "chamfer_distance",
    "describe",
    "farthest_point_sampling",
    "knn",
    "select",
    "similarity_implementation",
    "similarity_logsumexp",
]

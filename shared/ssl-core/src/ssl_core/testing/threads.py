"""One torch thread for the duration of a test: tiny models run about as fast on one thread, and many times faster
than on two when the cores are shared with other jobs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads, then restore the previous count (for an autouse fixture:
    ``with torch_threads(1): yield``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)

"""How many intra-op threads a piece of work gets."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Run the enclosed torch work on ``n`` intra-op threads, then restore the previous count.

    Work made of many small operations loses more to starting and synchronising threads than it gains
    from them: on 2 cores (AMD EPYC, torch 2.9) the linear probe's L-BFGS on 10,000 x 128 features took
    1.0 s on one thread and 5.1 s on two, t-SNE of 2,000 points 4.2 s against 7.2 s, whatever OpenMP's
    wait policy; convolutions of a training step, large operations, ran 1.7x faster on two.

    Args:
        n: the thread count inside the block (left alone when it is already that).
    """
    before = torch.get_num_threads()
    if before == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)

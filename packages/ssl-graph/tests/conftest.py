import pytest

from ssl_core.testing import torch_threads


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny graph models run fastest on one thread, and many times faster than on two when the cores are shared
    (the graph recipes set train.threads=1 for the same reason)."""
    with torch_threads(1):
        yield

import pytest

from ssl_core.testing import torch_threads


@pytest.fixture(autouse=True)
def one_thread():
    """The vision test models and images are tiny: one thread is about as fast, and far faster on shared cores."""
    with torch_threads(1):
        yield

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny graph models run fastest on one thread, and many times faster than on two when the cores are shared
    (the graph recipes set train.threads=1 for the same reason)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

"""Root pytest configuration, loaded before any test module.

Without a CUDA device the Triton kernels of ``ssl_core.kernels`` are tested under Triton's interpreter,
which runs them on CPU tensors with NumPy. ``triton.jit`` reads ``TRITON_INTERPRET`` when a kernel is
decorated, i.e. when its module is first imported, so it has to be set here, before any test imports one.
On a CUDA machine the variable is left alone and the same tests compile and run the real kernels.
The probe cache of the tests is a fresh temporary folder.
"""

import os
import tempfile

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# probe scores cached by the tests stay out of the user's cache (ssl_core.eval.cache); subprocesses inherit it
os.environ.setdefault("SELFSUP_CACHE_DIR", tempfile.mkdtemp(prefix="selfsup-test-cache-"))


def pytest_configure(config):
    # Triton 3.5's interpreter turns loop bounds into one-element NumPy arrays and calls int() on them,
    # which NumPy >= 1.25 deprecates: a warning about the interpreter, not about our kernels.
    config.addinivalue_line(
        "filterwarnings", "ignore:Conversion of an array with ndim > 0:DeprecationWarning:triton.runtime.interpreter"
    )

"""Every Triton kernel compiles for NVIDIA GPUs, down to a cubin, without a GPU in the machine.

The interpreter (TRITON_INTERPRET=1) executes kernels as NumPy code and accepts programs the compiler
rejects (types of loop-carried values, dot-product operand types, ...). This test compiles each kernel for
Hopper (sm_90) with the signatures and dtypes the launchers use, in a subprocess where
the interpreter is off, so a kernel that would only fail on a CUDA machine fails here.
"""

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="Triton is not installed")

SCRIPT = textwrap.dedent(
    """
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from ssl_core.kernels.ball_query.triton import _ball_query_kernel
    from ssl_core.kernels.contrastive.triton import (
        _backward_anchors_kernel, _backward_candidates_kernel, _forward_kernel)
    from ssl_core.kernels.fps.triton import _fps_kernel
    from ssl_core.kernels.knn.triton import _knn_kernel

    def contrastive(kernel, dtype, grads, n_ex, precision):
        sig = {"A": f"*{dtype}", "C": f"*{dtype}", "EX": "*i64", "LSE": "*fp32"}
        if grads:
            sig |= {"G": "*fp32", grads: f"*{dtype}"}
        sig |= dict.fromkeys(["M", "K", "D", "stride_a", "stride_c"], "i32")
        if grads:
            sig["stride_" + grads.lower()] = "i32"
        sig["scale"] = "fp32"
        const = {"N_EX": n_ex, "BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_D": 64, "PRECISION": precision}
        if grads:
            const["BLOCK_OUT"] = 128
        return kernel, sig, const

    def points(kernel, dtype, extra, const):
        sig = {"Q": f"*{dtype}", "P": f"*{dtype}", "IDX": "*i64", **extra}
        return kernel, sig, const

    cases = []
    for dtype, precision in [("fp32", "ieee"), ("fp16", "tf32"), ("bf16", "tf32")]:
        cases.append(contrastive(_forward_kernel, dtype, None, 1, precision))
    for dtype, n_ex in [("fp32", 2), ("bf16", 0)]:
        cases.append(contrastive(_backward_anchors_kernel, dtype, "DA", n_ex, "tf32"))
        cases.append(contrastive(_backward_candidates_kernel, dtype, "DC", n_ex, "tf32"))
    for dtype in ["fp16"]:  # loaded and converted to float32 at once: one dtype covers the kernels
        cases.append((_fps_kernel, {"P": f"*{dtype}", "IDX": "*i64", "DIST": "*fp32", "N": "i32",
                                    "N_SAMPLES": "i32", "start": "i32"}, {"BLOCK": 1024}))
        cases.append(points(_knn_kernel, dtype, {"M": "i32", "N": "i32", "K": "i32"},
                            {"BLOCK_M": 64, "BLOCK_N": 128, "K_PAD": 32}))
        cases.append(points(_ball_query_kernel, dtype, {"COUNT": "*i64", "M": "i32", "N": "i32", "K": "i32",
                            "r2": "fp32"}, {"BLOCK_M": 64, "BLOCK_N": 128, "K_PAD": 32}))
    for kernel, sig, const in cases:
        sig = {**sig, **dict.fromkeys(const, "constexpr")}
        compiled = triton.compile(ASTSource(fn=kernel, signature=sig, constexprs=const),
                                  target=GPUTarget("cuda", 90, 32))
        assert compiled.asm["cubin"], kernel.__name__
    print(f"compiled {len(cases)} kernels for sm_90")
    """
)


@pytest.mark.slow
def test_every_triton_kernel_compiles_for_cuda():
    # Triton's cache is keyed by the kernel source and signature: a cache hit means this exact kernel
    # compiled before, so reruns are fast and a changed kernel is compiled again
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "compiled" in proc.stdout

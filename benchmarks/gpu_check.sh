#!/usr/bin/env bash
# The Triton kernels of ssl_core.kernels against the PyTorch references on a CUDA machine: correctness,
# time, TFLOP/s and peak memory for NT-Xent (and Inf-CL where installed) and the point operators.
#
#   bash benchmarks/gpu_check.sh            # on a CUDA machine: a few minutes; writes results/gpu_check.md
#   bash benchmarks/gpu_check.sh --dry-run  # anywhere: toy sizes on CPU under the Triton interpreter
#
# PYTHON overrides the interpreter (default: `uv run python`). Exit status 1 when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ " $* " == *" --dry-run "* ]]; then
    export TRITON_INTERPRET=1  # read when the kernels are imported: must be set before Python starts
fi
${PYTHON:-uv run python} benchmarks/gpu_check.py "$@"

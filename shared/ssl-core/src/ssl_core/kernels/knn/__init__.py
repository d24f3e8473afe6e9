"""k nearest neighbours: KD-tree and chunked torch (reference.py) and a Triton kernel (triton.py)."""

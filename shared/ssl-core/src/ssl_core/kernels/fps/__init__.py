"""Farthest point sampling: NumPy / torch loops (reference.py) and a Triton kernel (triton.py)."""

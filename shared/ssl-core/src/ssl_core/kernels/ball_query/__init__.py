"""Ball query: chunked torch (reference.py) and a Triton kernel (triton.py)."""

"""One file per audio method: the paper's algorithm box in code."""

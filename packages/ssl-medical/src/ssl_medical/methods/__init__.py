"""The pretraining methods, one file each; shared parts live in ``methods/common.py``."""

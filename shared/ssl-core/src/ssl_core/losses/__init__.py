"""Self-supervised objectives, each as a function and a thin ``nn.Module``."""

from ssl_core.losses.contrastive import NTXentLoss, nt_xent

__all__ = ["NTXentLoss", "nt_xent"]

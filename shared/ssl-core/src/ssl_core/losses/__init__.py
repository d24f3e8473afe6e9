"""Self-supervised objectives, each as a function and a thin ``nn.Module``."""

from ssl_core.losses.contrastive import DCLLoss, DCLWLoss, InfoNCELoss, NTXentLoss, dcl, dclw, info_nce, nt_xent

__all__ = [
    "DCLLoss",
    "DCLWLoss",
    "InfoNCELoss",
    "NTXentLoss",
    "dcl",
    "dclw",
    "info_nce",
    "nt_xent",
]

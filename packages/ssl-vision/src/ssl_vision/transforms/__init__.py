"""Image augmentations for self-supervised views."""

from ssl_vision.transforms.views import MultiView, ViewConfig, view_transform

__all__ = ["MultiView", "ViewConfig", "view_transform"]

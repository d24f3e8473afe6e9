"""Image augmentations for self-supervised views."""

from ssl_vision.transforms.views import (
    MultiCropConfig,
    MultiView,
    View,
    ViewConfig,
    blur_kernel_size,
    byol_views,
    mae_view,
    multicrop_transform,
    view_transform,
)

__all__ = [
    "MultiCropConfig",
    "MultiView",
    "View",
    "ViewConfig",
    "blur_kernel_size",
    "byol_views",
    "mae_view",
    "multicrop_transform",
    "view_transform",
]

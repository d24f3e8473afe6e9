"""Augmentations: 3-D intensity and spatial, 1-D signal transformations, HED stain augmentation of tiles."""

"""Backbones: MONAI's UNet, SwinUNETR and ViTAutoEnc behind one wrapper that pools features and exports
state dicts MONAI loads strictly; the CSwin UNet; the signal transformer."""

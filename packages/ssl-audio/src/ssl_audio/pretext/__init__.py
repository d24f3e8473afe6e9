"""Training targets computed from the batch: HuBERT's k-means frame labels."""

from ssl_audio.pretext.targets import KMeansTargets, layer_features, load_target_backbone, mfcc_features, pool_frames

__all__ = ["KMeansTargets", "layer_features", "load_target_backbone", "mfcc_features", "pool_frames"]

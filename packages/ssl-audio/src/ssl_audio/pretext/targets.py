"""HuBERT's frame targets (Hsu et al., 2021, Sec. II-A and IV-B): k-means cluster ids of frame features.

Iteration 1 clusters 39-dimensional MFCCs (13 coefficients with first and second deltas, 100 frames/s,
:func:`ssl_audio.frontend.mfcc`); iteration 2 clusters the hidden states of one transformer layer of the
backbone trained in iteration 1. The paper labels the whole corpus once, offline; here the labels are computed
on the fly from the batch: the k-means centroids are fitted once and stored as buffers of
:class:`KMeansTargets` (so they are checkpointed and exported with the method), and a frame's label is the id
of its nearest centroid -- the same label an offline pass would give, at the cost of one MFCC transform (or one
forward pass of the frozen iteration-1 model) per batch.

Frame alignment. MFCCs have 100 frames/s (``T // 160 + 1`` centred frames), the wav2vec 2.0 backbone 50 frames/s
(49 frames for one second: 400-sample receptive field, 320-sample hop). :func:`pool_frames` averages the MFCC
frames onto the backbone's ``F`` frames by adaptive average pooling over time (for 101 -> 49 frames each backbone
frame averages 3 MFCC frames, about 30 ms around its own window), which works for any frame rate. fairseq instead
keeps every second label of a 100 Hz label sequence; averaging smooths the labels slightly and uses every frame.

Standardisation. Each feature dimension is standardised with the mean and standard deviation of the fitting
sample before k-means (both stored with the centroids): raw MFCCs are dominated by c0 and the deltas would hardly
count otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ssl_audio.frontend import mfcc
from ssl_core.errors import CheckpointError, ConfigError


def pool_frames(features: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Average a feature sequence onto ``num_frames`` frames (adaptive average pooling over time).

    Shapes:
        - features: ``(B, T_in, D)``
        - output: ``(B, num_frames, D)``
    """
    if features.shape[1] == num_frames:
        return features
    return F.adaptive_avg_pool1d(features.transpose(1, 2), num_frames).transpose(1, 2)


@torch.no_grad()
def mfcc_features(wave: torch.Tensor, num_frames: int, sample_rate: int = 16_000) -> torch.Tensor:
    """MFCCs with deltas (39-d, 100 frames/s) pooled onto the backbone's ``num_frames`` frames.

    Shapes:
        - wave: ``(B, T)``
        - output: ``(B, num_frames, 39)`` float32
    """
    return pool_frames(mfcc(wave.float(), sample_rate), num_frames)


@torch.no_grad()
def layer_features(backbone: nn.Module, wave: torch.Tensor, layer: int) -> torch.Tensor:
    """Hidden states of transformer layer ``layer`` of a (frozen) wav2vec 2.0 / HuBERT backbone, unmasked.

    ``layer`` counts as Hugging Face's ``hidden_states``: 0 is the transformer's input (after the positional
    convolution), ``n`` the output of layer ``n`` (the paper clusters layer 6 of 12 for its second iteration).

    Shapes:
        - wave: ``(B, T)``
        - output: ``(B, F, D)`` float32
    """
    hidden_in, _ = backbone.project(backbone.extract_features(wave))
    out = backbone.encode(hidden_in, output_hidden_states=True)
    states = out[1] if isinstance(out, tuple) else out.hidden_states
    if not 0 <= layer < len(states):
        raise ConfigError(f"target_layer={layer} is out of range: the target backbone has {len(states)} hidden states")
    return states[layer].float()


def load_target_backbone(path: str | Path) -> nn.Module:
    """The frozen backbone whose layer features are clustered in a later HuBERT iteration.

    Args:
        path: a run folder of ``selfsup pretrain`` (its latest checkpoint's backbone) or an export folder of
            ``selfsup export``.

    Returns:
        the backbone in evaluation mode, without gradients.
    """
    from safetensors.torch import load_file

    from ssl_core.export import CONFIG, load_backbone
    from ssl_core.registry import get_modality
    from ssl_core.train.checkpoint import check_checkpoint, latest_checkpoint

    path = Path(path)
    if (path / CONFIG).is_file():
        backbone = load_backbone(path)
    elif (path / "backbone.json").is_file():
        spec = json.loads((path / "backbone.json").read_text())
        ckpt = latest_checkpoint(path / "checkpoints")
        if ckpt is None:
            raise CheckpointError(f"{path} has no checkpoint to take the target backbone from")
        check_checkpoint(ckpt, ("model.safetensors",))
        backbone = get_modality(spec["modality"]).backbones[spec["name"]](spec["config"])
        state = load_file(str(ckpt / "model.safetensors"))
        backbone.load_state_dict({k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")})
    else:
        raise CheckpointError(f"{path} is neither a run folder (backbone.json) nor an export (config.json)")
    backbone.eval().requires_grad_(False)
    return backbone


class KMeansTargets(nn.Module):
    """k-means centroids as buffers, and the nearest-centroid label of each frame.

    :meth:`fit` runs scikit-learn's seeded ``KMeans`` (``MiniBatchKMeans`` above ``minibatch_above`` frames) on
    standardised frames; :meth:`forward` labels frames by their nearest centroid in squared Euclidean distance,
    which is ``KMeans.predict``. Until :meth:`fit` has run, :attr:`fitted` is False.

    Args:
        num_clusters: ``k``.
        dim: feature dimension.
        seed: k-means seed.
        minibatch_above: frames above which ``MiniBatchKMeans`` replaces ``KMeans``.

    Shapes:
        - forward: features ``(..., dim)`` -> labels ``(...)`` long
    """

    def __init__(self, num_clusters: int, dim: int, seed: int = 0, minibatch_above: int = 50_000) -> None:
        super().__init__()
        if num_clusters < 2:
            raise ConfigError(f"num_clusters must be at least 2, got {num_clusters}")
        self.num_clusters, self.dim, self.seed, self.minibatch_above = num_clusters, dim, seed, minibatch_above
        self.register_buffer("centroids", torch.zeros(num_clusters, dim))
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.register_buffer("is_fitted", torch.zeros((), dtype=torch.bool))

    @property
    def fitted(self) -> bool:
        return bool(self.is_fitted)

    def standardize(self, features: torch.Tensor) -> torch.Tensor:
        return (features.float() - self.mean) / self.std

    @torch.no_grad()
    def fit(self, features: torch.Tensor) -> KMeansTargets:
        """Fit the centroids on frames ``(N, dim)`` (or ``(B, F, dim)``, flattened); on rank 0 under torchrun,
        broadcast to the other ranks."""
        from sklearn.cluster import KMeans, MiniBatchKMeans

        x = features.reshape(-1, self.dim).float()
        if len(x) < self.num_clusters:
            raise ConfigError(f"k-means with {self.num_clusters} clusters needs at least as many frames, got {len(x)}")
        self.mean.copy_(x.mean(0))
        self.std.copy_(x.std(0).clamp_min(1e-5))
        data = self.standardize(x).cpu().numpy()
        if len(data) > self.minibatch_above:
            km = MiniBatchKMeans(self.num_clusters, random_state=self.seed, n_init=3, batch_size=4096)
        else:
            km = KMeans(self.num_clusters, random_state=self.seed, n_init=3)
        km.fit(data)
        self.centroids.copy_(torch.as_tensor(km.cluster_centers_, dtype=torch.float32))
        self.is_fitted.fill_(True)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for buf in (self.centroids, self.mean, self.std, self.is_fitted):
                torch.distributed.broadcast(buf, 0)
        self.kmeans_ = km  # kept for tests (not a buffer, not checkpointed)
        return self

    @torch.no_grad()
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if not self.fitted:
            raise RuntimeError("KMeansTargets.forward before fit: fit the centroids first")
        x = self.standardize(features).reshape(-1, self.dim)
        # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2; ||x||^2 does not change the argmin
        dist = -2 * x @ self.centroids.T + (self.centroids**2).sum(1)
        return dist.argmin(1).reshape(features.shape[:-1])

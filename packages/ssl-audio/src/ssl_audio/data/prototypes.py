"""Bird-MAE's prototypical probe (Rauch et al., 2025) as a probe column of the audio data: learned prototypes per
class matched against a frozen backbone's patch tokens (:func:`ssl_core.eval.prototypical.prototypical_probe`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import default_collate

from ssl_core.eval.prototypical import prototypical_probe


@torch.no_grad()
def _tokens(backbone: Any, inputs: Any, collate: Callable, device: Any, batch_size: int) -> torch.Tensor:
    out = []
    for lo in range(0, len(inputs), batch_size):
        wave = collate([inputs[i] for i in range(lo, min(lo + batch_size, len(inputs)))])
        out.append(backbone.patch_tokens(wave.to(device)).float().cpu())
    return torch.cat(out)


def prototypical_column(
    bundle: Any,
    prototypes_per_class: int = 5,
    steps: int = 300,
    lr: float = 1e-2,
    batch_size: int | None = 256,
    seed: int = 0,
) -> Callable[[str, Callable, Any, Any], float | None]:
    """Bird-MAE's prototypical probe as a probe column: ``bundle.extra_probes["proto_top1"] =
    prototypical_column(bundle)``.

    The returned ``fn(row_name, embed, device, backbone)`` embeds the bundle's ``probe_train`` and
    ``probe_test`` clips into the frozen backbone's patch tokens (``backbone.patch_tokens``, as
    :meth:`ssl_audio.models.spectrogram.SpectrogramViT.patch_tokens`) and returns the top-1 accuracy of
    :func:`~ssl_core.eval.prototypical.prototypical_probe` on them; it returns ``None`` for rows whose backbone
    has no ``patch_tokens`` (the baselines, CNN and waveform models). It ignores ``embed`` (which pools the
    tokens) and uses the whole ``probe_train`` split.

    Args:
        bundle: the :class:`~ssl_core.data.DataBundle` (its probe splits and ``collate_fn``).
        prototypes_per_class, steps, lr, batch_size, seed: as :func:`prototypical_probe` (mini-batches of 256
            keep the ``(B, C, J, T)`` similarities small on CPUs).
    """

    def probe(row_name: str, embed: Callable, device: Any, backbone: Any) -> float | None:
        if not hasattr(backbone, "patch_tokens") or bundle.probe_train is None or bundle.probe_test is None:
            return None
        collate = bundle.collate_fn or default_collate
        was_training = backbone.training
        backbone.eval()
        try:
            train = _tokens(backbone, bundle.probe_train.inputs, collate, device, 128)
            test = _tokens(backbone, bundle.probe_test.inputs, collate, device, 128)
        finally:
            backbone.train(was_training)
        return prototypical_probe(
            train,
            torch.as_tensor(bundle.probe_train.labels),
            test,
            torch.as_tensor(bundle.probe_test.labels),
            prototypes_per_class=prototypes_per_class,
            steps=steps,
            lr=lr,
            batch_size=batch_size,
            seed=seed,
            device=device,
        )

    return probe

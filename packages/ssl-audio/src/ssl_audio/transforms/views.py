"""The pretext item of Audio-MAE: the waveform with an MAE patch mask (methods that augment the batch in
``forward`` use :func:`ssl_audio.methods.common.waveform_item`)."""

from __future__ import annotations

import torch

from ssl_core.masking import random_mask


class MaskedClip:
    """The pretext of Audio-MAE: the waveform with a uniform random mask of its spectrogram patches, drawn
    from torch's global generator (which the trainer seeds per sample) by :func:`ssl_core.masking.random_mask`.

    Args:
        num_patches: patches ``L`` of one clip's spectrogram.
        mask_ratio: share of patches removed.

    Shapes:
        - output: ``{"wave": (T,), "mask": (L,) bool, "ids_keep": (L_keep,), "ids_restore": (L,)}``
    """

    def __init__(self, num_patches: int, mask_ratio: float) -> None:
        self.num_patches, self.mask_ratio = num_patches, mask_ratio
        # keep round(L * (1 - ratio)) patches: random_mask truncates L * (1 - ratio), and 100 * (1 - 0.8) is
        # 19.999... in floating point, which would keep 19 of 100; the ratio handed on lands half a patch inside
        self.num_keep = round(num_patches * (1 - mask_ratio))
        self._ratio = 1 - (self.num_keep + 0.5) / num_patches

    def __call__(self, wave: torch.Tensor) -> dict[str, torch.Tensor]:
        m = random_mask(1, self.num_patches, self._ratio)
        return {"wave": wave, "mask": m.mask[0], "ids_keep": m.ids_keep[0], "ids_restore": m.ids_restore[0]}

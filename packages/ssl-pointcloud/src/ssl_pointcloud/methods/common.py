"""What several point-cloud methods share: Point-MAE's random group masking, the split of grouped tensors into
visible and masked parts, and the mask-token transformer decoder of Point-MAE (also GeoMAE's)."""

from __future__ import annotations

import torch
from torch import nn

from ssl_core.errors import ConfigError
from ssl_pointcloud.models.transformer import TransformerStack


def num_masked_groups(num_groups: int, ratio: float) -> int:
    """Groups masked per cloud: ``int(ratio * num_groups)``, as Point-MAE's ``_mask_center_rand`` (38 of 64 at
    0.6), at least 1 and at most ``num_groups - 1`` so that both parts are non-empty.

    Raises:
        ConfigError: when ``ratio`` is outside ``(0, 1)`` or ``num_groups < 2``.
    """
    if not 0.0 < ratio < 1.0:
        raise ConfigError(f"mask ratio must lie in (0, 1), got {ratio}; set method.mask_ratio to e.g. 0.6")
    if num_groups < 2:
        raise ConfigError(f"masking needs at least 2 groups per cloud, got {num_groups}; raise backbone.num_groups")
    return min(max(int(ratio * num_groups), 1), num_groups - 1)


def random_group_mask(
    batch: int,
    num_groups: int,
    ratio: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Point-MAE's ``rand`` mask: in every cloud, :func:`num_masked_groups` groups chosen uniformly without
    replacement, independently per cloud.

    Args:
        batch: clouds ``B``.
        num_groups: groups per cloud ``G``.
        ratio: share of masked groups (Point-MAE: 0.6).
        generator: source of randomness (CPU generator; ``None`` for torch's global one).
        device: device of the returned mask.

    Shapes:
        - output: ``(B, G)`` bool, True on masked groups, the same count in every row
    """
    n_mask = num_masked_groups(num_groups, ratio)
    noise = torch.rand(batch, num_groups, generator=generator)
    ranks = noise.argsort(dim=1).argsort(dim=1)  # a uniformly random permutation per cloud
    return (ranks < n_mask).to(device)


def split_groups(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Visible and masked entries of a per-group tensor, each in group order.

    Args:
        x: per-group values (centres, neighbourhoods, tokens...).
        mask: True on masked groups, the same count in every row (:func:`random_group_mask`).

    Shapes:
        - x: ``(B, G, ...)``; mask: ``(B, G)``
        - output: visible ``(B, G - M, ...)``, masked ``(B, M, ...)``
    """
    if mask.shape != x.shape[:2]:
        raise ValueError(f"mask {tuple(mask.shape)} must match the first two dims of x {tuple(x.shape)}")
    counts = mask.sum(dim=1)
    if (counts != counts[0]).any():
        raise ValueError("every cloud must mask the same number of groups")
    b, g = mask.shape
    m = int(counts[0]) if b else 0
    rest = x.shape[2:]
    return x[~mask].reshape(b, g - m, *rest), x[mask].reshape(b, m, *rest)


class MaskedGroupDecoder(nn.Module):
    """Point-MAE's decoder: the encoded visible tokens followed by one shared learned mask token per masked
    group, the positions added before every block (:class:`~ssl_pointcloud.models.transformer.TransformerStack`),
    a final LayerNorm, and the outputs at the masked positions returned (Point-MAE's ``TransformerDecoder``
    with ``return_token_num``; the prediction head is the caller's).

    Args:
        width: token width (the encoder's).
        depth: blocks (Point-MAE: 4).
        heads: attention heads (Point-MAE: 6).
        mlp_ratio: MLP hidden width relative to ``width``.

    Shapes:
        - visible_tokens, visible_pos: ``(B, V, width)``; masked_pos: ``(B, M, width)``
        - output: ``(B, M, width)``, in the order of ``masked_pos``
    """

    def __init__(self, width: int, depth: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if width % heads:
            raise ConfigError(f"decoder width ({width}) must be divisible by decoder heads ({heads})")
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.stack = TransformerStack(width, depth, heads, mlp_ratio)
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        for m in self.stack.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(
        self, visible_tokens: torch.Tensor, visible_pos: torch.Tensor, masked_pos: torch.Tensor
    ) -> torch.Tensor:
        """The decoded masked tokens ``(B, M, width)`` (see the class docstring)."""
        if visible_tokens.shape != visible_pos.shape or masked_pos.shape[::2] != visible_pos.shape[::2]:
            raise ValueError(
                f"visible tokens {tuple(visible_tokens.shape)}, visible positions {tuple(visible_pos.shape)} and "
                f"masked positions {tuple(masked_pos.shape)} must be (B, V, width), (B, V, width), (B, M, width)"
            )
        b, m, _ = masked_pos.shape
        tokens = torch.cat([visible_tokens, self.mask_token.expand(b, m, -1)], dim=1)
        pos = torch.cat([visible_pos, masked_pos], dim=1)
        return self.stack(tokens, pos)[:, tokens.shape[1] - m :]

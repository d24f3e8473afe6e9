"""Masks over token and frame sequences: BERT's MLM corruption, T5's span corruption, wav2vec 2.0's time spans."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ssl_core.errors import ConfigError


def _check_prob(p: float, name: str) -> None:
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"{name} must lie in [0, 1], got {p}")


def mlm_mask(
    input_ids: torch.Tensor,
    vocab_size: int,
    mask_token_id: int,
    mlm_probability: float = 0.15,
    special_tokens_mask: torch.Tensor | None = None,
    special_token_ids: Sequence[int] = (),
    mask_replace_prob: float = 0.8,
    random_replace_prob: float = 0.1,
    word_ids: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masked-language-model corruption (Devlin et al., 2019, Sec. 3.1 and App. A.1).

    Each token is selected with probability ``mlm_probability``; a selected token is replaced by the mask
    token with probability ``mask_replace_prob`` (80%), by a random token with ``random_replace_prob``
    (10%), and left unchanged otherwise (10%). Special tokens (those in ``special_tokens_mask`` or with an
    id in ``special_token_ids``: padding, [CLS], [SEP] ...) are never selected. Random replacements are
    drawn uniformly from the vocabulary without the special ids -- Hugging Face's
    ``DataCollatorForLanguageModeling`` draws from the whole vocabulary and can insert a [CLS]; this is the
    deliberate difference. With ``word_ids`` the selection is whole-word masking: each word is selected
    with ``mlm_probability`` and all its tokens with it (BIOptimus's later curriculum phases). Setting
    ``mask_replace_prob=1`` gives the corruption-free variant of BIOptimus's last phase.

    Args:
        input_ids: token ids.
        vocab_size: size of the vocabulary (ids ``0 .. vocab_size - 1``).
        mask_token_id: id of the mask token.
        mlm_probability: selection probability (BERT: 0.15).
        special_tokens_mask: True on tokens never to select.
        special_token_ids: ids never to select nor to draw as random replacements.
        mask_replace_prob: share of selected tokens replaced by the mask token.
        random_replace_prob: share of selected tokens replaced by a random token.
        word_ids: word index of each token (``-1`` for tokens outside words), for whole-word masking.
        generator: source of randomness.

    Shapes:
        - input_ids, special_tokens_mask, word_ids: ``(B, L)``
        - output: ``(inputs, labels)``, both ``(B, L)``; ``labels`` holds the original id on selected
          tokens and ``-100`` elsewhere (the ``ignore_index`` of :func:`ssl_core.losses.masked_cross_entropy`).
    """
    _check_prob(mlm_probability, "mlm_probability")
    _check_prob(mask_replace_prob, "mask_replace_prob")
    _check_prob(random_replace_prob, "random_replace_prob")
    if mask_replace_prob + random_replace_prob > 1.0 + 1e-9:
        raise ConfigError(
            f"mask_replace_prob + random_replace_prob must not exceed 1, "
            f"got {mask_replace_prob} + {random_replace_prob}"
        )
    specials = sorted(set(int(i) for i in special_token_ids))
    never = torch.isin(input_ids, torch.tensor(specials, dtype=input_ids.dtype, device=input_ids.device))
    if special_tokens_mask is not None:
        if special_tokens_mask.shape != input_ids.shape:
            raise ValueError(
                f"special_tokens_mask must have shape {tuple(input_ids.shape)}, got {tuple(special_tokens_mask.shape)}"
            )
        never |= special_tokens_mask.to(input_ids.device).bool()
    shape = input_ids.shape
    if word_ids is None:
        selected = torch.rand(shape, generator=generator).to(input_ids.device) < mlm_probability
    else:
        if word_ids.shape != shape:
            raise ValueError(f"word_ids must have shape {tuple(shape)}, got {tuple(word_ids.shape)}")
        n_words = int(word_ids.max()) + 1 if word_ids.numel() else 0
        word_selected = (
            torch.rand(shape[0], max(n_words, 1), generator=generator).to(input_ids.device) < mlm_probability
        )
        selected = word_selected.gather(1, word_ids.clamp(min=0).to(input_ids.device)) & (word_ids >= 0)
    selected &= ~never
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, -100))
    # one uniform draw per token decides between mask token / random token / unchanged
    u = torch.rand(shape, generator=generator).to(input_ids.device)
    to_mask = selected & (u < mask_replace_prob)
    to_random = selected & (u >= mask_replace_prob) & (u < mask_replace_prob + random_replace_prob)
    allowed = torch.ones(vocab_size, dtype=torch.bool)
    allowed[[i for i in specials if 0 <= i < vocab_size]] = False
    allowed_ids = allowed.nonzero().squeeze(1).to(input_ids.device)
    if len(allowed_ids) == 0:
        raise ConfigError("mlm_mask has no non-special token id to draw random replacements from")
    random_ids = allowed_ids[torch.randint(len(allowed_ids), shape, generator=generator).to(input_ids.device)]
    inputs = torch.where(to_mask, torch.full_like(input_ids, mask_token_id), input_ids)
    inputs = torch.where(to_random, random_ids.to(input_ids.dtype), inputs)
    return inputs, labels


def _random_segmentation(num_items: int, num_segments: int, generator: torch.Generator | None) -> torch.Tensor:
    """Split ``num_items`` into ``num_segments`` positive lengths, uniformly over all such compositions."""
    cuts = torch.randperm(num_items - 1, generator=generator)[: num_segments - 1].sort().values + 1
    bounds = torch.cat([torch.tensor([0]), cuts, torch.tensor([num_items])])
    return bounds.diff()


def span_mask(
    batch_size: int,
    length: int,
    noise_density: float = 0.15,
    mean_span_length: float = 3.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """T5's span-corruption noise mask (Raffel et al., 2020, Sec. 3.3; ``random_spans_noise_mask``).

    Each sample masks exactly ``round(L * noise_density)`` tokens (at least 1, at most ``L - 1``) in
    ``round(num_noise / mean_span_length)`` spans (at least 1). The noise tokens and the kept tokens are
    each split into that many positive-length runs uniformly at random, and the runs alternate, starting
    with kept tokens -- T5's algorithm. The text package turns each masked span into a sentinel token.

    Args:
        batch_size: ``B``.
        length: sequence length ``L`` (at least 2).
        noise_density: share of masked tokens (T5: 0.15).
        mean_span_length: mean length of a masked span (T5: 3).
        generator: source of randomness.

    Shapes:
        - output: ``(B, L)`` bool, True on masked (noise) tokens
    """
    if not 0.0 < noise_density < 1.0:
        raise ConfigError(f"noise_density must lie in (0, 1), got {noise_density}")
    if mean_span_length < 1:
        raise ConfigError(f"mean_span_length must be at least 1, got {mean_span_length}")
    if length < 2:
        raise ConfigError(f"span_mask needs sequences of at least 2 tokens, got {length}")
    num_noise = min(max(int(round(length * noise_density)), 1), length - 1)
    num_spans = max(int(round(num_noise / mean_span_length)), 1)
    num_keep = length - num_noise
    num_spans = min(num_spans, num_keep)  # every span needs kept tokens before it
    out = torch.zeros(batch_size, length, dtype=torch.bool)
    for row in out:
        noise_lengths = _random_segmentation(num_noise, num_spans, generator)
        keep_lengths = _random_segmentation(num_keep, num_spans, generator)
        starts = torch.cumsum(keep_lengths, 0) + torch.cumsum(noise_lengths, 0) - noise_lengths
        for start, n in zip(starts.tolist(), noise_lengths.tolist(), strict=True):
            row[start : start + n] = True
    return out


def time_mask(
    batch_size: int,
    length: int,
    mask_prob: float = 0.65,
    mask_length: int = 10,
    min_masks: int = 2,
    lengths: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """wav2vec 2.0 span masking over frames (Baevski et al., 2020, Sec. 3.1; fairseq ``compute_mask_indices``).

    In a sequence of ``T`` valid frames, ``int(mask_prob * T / mask_length + u)`` span starts
    (``u ~ U[0, 1)``, a probabilistic rounding; at least ``min_masks``) are drawn without replacement among
    the first ``T - mask_length + 1`` frames, and the ``mask_length`` frames from each start are masked.
    ``mask_prob`` is therefore the share of frames the spans would cover if they did not overlap: fairseq's and
    Hugging Face's wav2vec 2.0 configurations set it to 0.65, which is the paper's "each frame starts a span with
    probability p = 0.065" times ``M = 10``. Spans overlap, so about 49% of frames end up masked at
    ``mask_prob = 0.65, mask_length = 10`` (and only about 6% at 0.065, which is not the paper's setting). As
    fairseq, ``u`` is drawn per sample; Hugging Face's ``_compute_mask_indices`` draws one per batch (same
    expectation). The number of spans is capped so that ``spans * mask_length <= T``.

    Args:
        batch_size: ``B``.
        length: padded number of frames ``L``.
        mask_prob: share of the frames the spans cover before overlaps, i.e. span starts per frame times
            ``mask_length`` (wav2vec 2.0 and HuBERT: 0.65, about 49% of frames masked once spans overlap).
        mask_length: span length ``M`` (10).
        min_masks: minimum number of spans per sample (2).
        lengths: valid frames per sample (the rest is padding, never masked); ``L`` for all by default.
        generator: source of randomness.

    Shapes:
        - lengths: ``(B,)``
        - output: ``(B, L)`` bool, True on masked frames
    """
    _check_prob(mask_prob, "mask_prob")
    if mask_length < 1:
        raise ConfigError(f"mask_length must be at least 1, got {mask_length}")
    if lengths is None:
        lengths = torch.full((batch_size,), length)
    if lengths.shape != (batch_size,) or int(lengths.max()) > length:
        raise ValueError(f"lengths must be ({batch_size},) values of at most {length}, got {lengths.tolist()}")
    out = torch.zeros(batch_size, length, dtype=torch.bool)
    offsets = torch.arange(mask_length)
    for row, valid in zip(out, lengths.tolist(), strict=True):
        u = torch.rand((), generator=generator).item()
        n_spans = max(int(mask_prob * valid / mask_length + u), min_masks)
        n_spans = min(n_spans, valid // mask_length, max(valid - mask_length + 1, 0))
        if n_spans == 0:
            continue
        starts = torch.randperm(valid - mask_length + 1, generator=generator)[:n_spans]
        row[(starts[:, None] + offsets).flatten()] = True
    return out

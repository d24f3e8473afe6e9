"""Token corruption drawn in the data-loader worker, and the batching of ``(input ids, target ids)`` pairs."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ssl_core.masking import mlm_mask
from ssl_text.data.text import TextSample, pad_batch
from ssl_text.tokenization import MASK_ID, NUM_SPECIAL

IGNORE_INDEX = -100  # target of positions without a loss (F.cross_entropy's default ignore_index)


def pad_targets(seqs: Sequence[Sequence[int]], length: int | None = None, value: int = IGNORE_INDEX) -> torch.Tensor:
    """Right-pad per-token targets with ``value`` (ignored by the loss).

    Args:
        seqs: one target sequence per sample.
        length: padded length (``None``: the longest sequence).
        value: the padding value.

    Shapes:
        - output: ``(B, L)`` int64
    """
    length = max(len(s) for s in seqs) if length is None else length
    out = torch.full((len(seqs), length), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    return out


class MLMPretext:
    """``sample -> (corrupted ids, labels)``: BERT's token corruption (Devlin et al., 2019) of one sequence.

    :func:`ssl_core.masking.mlm_mask` selects a ``mlm_probability`` share of the tokens, replaces
    ``mask_replace_prob`` of the selected ones by ``[MASK]`` and ``random_replace_prob`` by a random token, and
    keeps the rest; ``labels`` hold the original id at the selected positions, -100 elsewhere. Special tokens
    (``[PAD]``, ``[CLS]``, ``[SEP]``, ``[MASK]``, the sentinels) are never selected nor drawn. The corruption of
    MLM (0.8 / 0.1), ELECTRA's generator input (1 / 0) and the random swaps of SLM and RTS (0 / 1). Draws from
    torch's global generator, which the trainer seeds per sample; picklable (it runs in data-loader workers).

    Args:
        vocab_size: tokens to draw random replacements from.
        mlm_probability: share of the tokens selected.
        mask_replace_prob: share of the selected tokens replaced by ``[MASK]``.
        random_replace_prob: share of the selected tokens replaced by a random token.

    Shapes:
        - output: two lists of the sample's length
    """

    def __init__(self, vocab_size: int, mlm_probability: float, mask_replace_prob: float, random_replace_prob: float):
        self.vocab_size, self.p = vocab_size, mlm_probability
        self.mask_p, self.random_p = mask_replace_prob, random_replace_prob

    def __call__(self, sample: TextSample) -> tuple[list[int], list[int]]:
        ids = torch.tensor([sample.ids])
        inputs, labels = mlm_mask(
            ids,
            self.vocab_size,
            MASK_ID,
            self.p,
            special_token_ids=range(NUM_SPECIAL),
            mask_replace_prob=self.mask_p,
            random_replace_prob=self.random_p,
        )
        return inputs[0].tolist(), labels[0].tolist()


def collate_with_labels(items: list[tuple[Sequence[int], Sequence[int]]]) -> dict[str, torch.Tensor]:
    """Batch ``(input ids, target ids)`` pairs: the inputs padded with ``[PAD]`` (``input_ids``,
    ``attention_mask``) and the targets padded with -100 (``labels``), each to its own longest sequence.

    The targets are per-token labels of the input (masked and replaced-token objectives) or a sequence of
    their own (the decoder targets of T5's span corruption and of code-switching restore).

    Shapes:
        - output: ``input_ids``/``attention_mask`` ``(B, S)``, ``labels`` ``(B, T)``
    """
    batch = pad_batch([x for x, _ in items])
    batch["labels"] = pad_targets([y for _, y in items])
    return batch

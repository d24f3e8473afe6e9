"""Pretext generators shared by several text methods: token corruption with per-token targets, and how a batch
of such pairs is padded. A generator that only one method uses stays in that method's file."""

from ssl_text.pretext.corruption import IGNORE_INDEX, MLMPretext, collate_with_labels, pad_targets

__all__ = ["IGNORE_INDEX", "MLMPretext", "collate_with_labels", "pad_targets"]

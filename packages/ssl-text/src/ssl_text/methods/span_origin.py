"""Span-origin objectives (Di Liello et al., 2022, "Pre-training Transformer Models with Sentence-Level
Objectives for Answer Sentence Selection"; the second part of the thesis of seed 41).

Two spans are encoded as one pair, ``[CLS] A [SEP] B [SEP]``, and a binary head on ``[CLS]`` predicts
whether they come from the same paragraph (``task=paragraph``: A and B are disjoint spans of one paragraph,
against B from another paragraph) or from the same document (``task=document``: B from another paragraph
of A's document, against B from another document). Positives and negatives are drawn with probability
1/2: :math:`L = \\mathrm{BCE}(h_{[CLS]}(A, B), y)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.errors import ConfigError, DataError
from ssl_core.method import MethodOutput
from ssl_text.data.text import TextInfo, TextSample
from ssl_text.methods.common import TextMethod, backbone_config
from ssl_text.models.backbones import TextBackboneConfig
from ssl_text.tokenization import CLS_ID, PAD_ID, SEP_ID

TASKS = ("paragraph", "document")


@dataclass
class SpanOriginConfig:
    """Span-origin settings (``--set method.<name>=<value>``).

    Args:
        backbone: the encoder (``bert``: the pair uses segment ids).
        task: ``paragraph`` (same paragraph?) or ``document`` (same document?).
    """

    backbone: TextBackboneConfig = field(default_factory=lambda: backbone_config("bert"))
    task: str = "document"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"method.task must be one of {', '.join(TASKS)}, got {self.task!r}")


def _draw(n: int) -> int:
    return int(torch.randint(n, ()))


class SpanPairPretext:
    """``sample -> (pair ids, segment ids, label)`` (picklable). Randomness from torch's global generator."""

    def __init__(self, paragraphs: list[list[int]], docs: list[int], task: str, max_length: int) -> None:
        self.paragraphs, self.docs, self.task = paragraphs, docs, task
        self.span = (max_length - 3) // 2
        self.by_doc: dict[int, list[int]] = {}
        for i, d in enumerate(docs):
            self.by_doc.setdefault(d, []).append(i)

    def _span(self, ids: list[int]) -> list[int]:
        body = ids[1:-1]  # without [CLS] ... [SEP]
        start = _draw(max(1, len(body) - self.span + 1))
        return body[start : start + self.span]

    def _other(self, exclude_doc: int | None, exclude: list[int]) -> list[int]:
        """Another paragraph than ``exclude`` (of another document than ``exclude_doc`` when given)."""
        for _ in range(1000):  # rejection sampling
            j = _draw(len(self.paragraphs))
            if self.paragraphs[j] != exclude and (exclude_doc is None or self.docs[j] != exclude_doc):
                return self.paragraphs[j]
        raise DataError("span origin: the corpus has no other paragraph or document to draw a negative from")

    def __call__(self, sample: TextSample) -> tuple[list[int], list[int], int]:
        positive = bool(torch.rand(()) < 0.5)
        body = sample.ids[1:-1]
        if self.task == "paragraph":
            half = len(body) // 2
            a = body[:half][-self.span :]
            if positive:
                b = body[half:][: self.span]
            else:
                b = self._span(self._other(None, sample.ids))
        else:
            a = self._span(sample.ids)
            same = [j for j in self.by_doc.get(sample.doc, []) if self.paragraphs[j] != sample.ids]
            if positive and same:
                b = self._span(self.paragraphs[same[_draw(len(same))]])
            else:
                positive = False
                b = self._span(self._other(sample.doc, sample.ids))
        ids = [CLS_ID, *a, SEP_ID, *b, SEP_ID]
        segments = [0] * (len(a) + 2) + [1] * (len(b) + 1)
        return ids, segments, int(positive)


def collate_span_pairs(items: list[tuple[list[int], list[int], int]]) -> dict[str, torch.Tensor]:
    """Pad pairs: ``input_ids``, ``attention_mask``, ``token_type_ids`` ``(B, L)`` and ``labels`` ``(B,)``."""
    length = max(len(ids) for ids, _, _ in items)
    ids = torch.full((len(items), length), PAD_ID, dtype=torch.long)
    seg = torch.zeros((len(items), length), dtype=torch.long)
    mask = torch.zeros((len(items), length), dtype=torch.long)
    for i, (x, s, _) in enumerate(items):
        ids[i, : len(x)], seg[i, : len(s)], mask[i, : len(x)] = torch.tensor(x), torch.tensor(s), 1
    labels = torch.tensor([y for _, _, y in items], dtype=torch.float)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": seg, "labels": labels}


class SpanOrigin(TextMethod):
    """Binary classification of span pairs by origin, from the ``[CLS]`` state.

    Shapes:
        - batch: ``input_ids``/``attention_mask``/``token_type_ids`` ``(B, L)``, ``labels`` ``(B,)``
        - :meth:`embed`: single texts ``-> (B, hidden_size)``, mean of the last hidden states
    """

    def __init__(self, config: SpanOriginConfig, info: TextInfo) -> None:
        if config.backbone.arch != "bert":
            raise ConfigError(
                f"span origin encodes pairs with segment ids: method.backbone.arch=bert, not {config.backbone.arch}"
            )
        if len(set(info.paragraph_doc)) < 2:
            raise ConfigError("span origin needs a corpus of several documents: --set data.name=python_docs")
        super().__init__(config, info)
        d = config.backbone.hidden_size
        self.head = nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Linear(d, 1))  # BERT's pooler, then a logit

    def pretext(self) -> SpanPairPretext:
        return SpanPairPretext(self.info.paragraphs, self.info.paragraph_doc, self.config.task, self.info.max_length)

    def collate(self):
        return collate_span_pairs

    def forward(self, batch: dict[str, torch.Tensor]) -> MethodOutput:
        h = self.backbone.states(batch["input_ids"], batch["attention_mask"], token_type_ids=batch["token_type_ids"])
        logits = self.head(h[:, 0]).squeeze(-1)  # (B,) from [CLS]
        loss = F.binary_cross_entropy_with_logits(logits, batch["labels"])
        with torch.no_grad():
            acc = ((logits > 0).float() == batch["labels"]).float().mean()
        return MethodOutput(loss, {"pair_accuracy": acc})

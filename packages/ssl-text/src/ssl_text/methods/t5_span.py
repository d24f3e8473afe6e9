"""T5 span corruption on source code (Raffel et al., 2020, "Exploring the Limits of Transfer Learning with a
Unified Text-to-Text Transformer"; applied to code by Mastropaolo et al., 2021, "Studying the Usage of
Text-To-Text Transfer Transformer to Support Code-Related Tasks"; seed 42).

``ssl_core.masking.span_mask`` marks 15% of the tokens in spans of mean length 3; each masked span of the
input becomes one sentinel ``<extra_id_i>``, and the target lists the sentinels each followed by the tokens
it hides (the inverse corruption of the kept tokens), ending with ``[SEP]``. The encoder-decoder is trained
with teacher-forced cross entropy on the target.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ssl_core.errors import ConfigError
from ssl_core.masking import span_mask
from ssl_core.method import MethodOutput
from ssl_text.data.text import TextInfo, TextSample
from ssl_text.methods.common import TextMethod, backbone_config, seq2seq_loss
from ssl_text.models.backbones import TextBackboneConfig
from ssl_text.pretext.corruption import collate_with_labels
from ssl_text.tokenization import FIRST_SENTINEL_ID, NUM_SENTINELS, SEP_ID


@dataclass
class T5SpanConfig:
    """Span-corruption settings (``--set method.<name>=<value>``).

    Args:
        backbone: an encoder-decoder (``arch=t5``).
        noise_density: share of tokens masked (T5: 0.15).
        mean_span_length: mean length of a masked span (T5: 3).
    """

    backbone: TextBackboneConfig = field(default_factory=lambda: backbone_config("t5"))
    noise_density: float = 0.15
    mean_span_length: float = 3.0


def sentinel_corruption(tokens: list[int], noise: list[bool]) -> tuple[list[int], list[int]]:
    """T5's ``noise_span_to_unique_sentinel`` applied to the input (noise spans -> sentinels) and to the
    target (kept spans -> sentinels), sentinels numbered in order of appearance.

    Example: tokens ``a b c d e`` with noise on ``b c`` give input ``a <0> d e`` and target ``<0> b c <1>``.
    """

    def collapse(keep_noise: bool) -> list[int]:
        out, sentinel, prev = [], 0, False
        for t, n in zip(tokens, noise, strict=True):
            hide = n != keep_noise  # tokens replaced by a sentinel in this stream
            if hide and not prev:
                out.append(FIRST_SENTINEL_ID + sentinel)
                sentinel += 1
            if not hide:
                out.append(t)
            prev = hide
        return out

    return collapse(keep_noise=False), collapse(keep_noise=True)


class SpanCorruptionPretext:
    """``sample -> (corrupted ids, target ids)`` on the tokens between ``[CLS]`` and ``[SEP]`` (picklable)."""

    def __init__(self, noise_density: float, mean_span_length: float) -> None:
        self.noise_density, self.mean_span_length = noise_density, mean_span_length

    def __call__(self, sample: TextSample) -> tuple[list[int], list[int]]:
        body = sample.ids[1:-1]
        if len(body) < 2:
            return sample.ids, [FIRST_SENTINEL_ID, SEP_ID]
        noise = span_mask(1, len(body), self.noise_density, self.mean_span_length)[0].tolist()
        inputs, targets = sentinel_corruption(body, noise)
        return [sample.ids[0], *inputs, SEP_ID], [*targets, SEP_ID]


class T5SpanCorruption(TextMethod):
    """A T5 restores the masked spans of code.

    Shapes:
        - batch: ``input_ids``/``attention_mask`` ``(B, S)``, ``labels`` ``(B, T)``
        - :meth:`embed`: ``-> (B, hidden_size)``, mean of the encoder's last hidden states
    """

    def __init__(self, config: T5SpanConfig, info: TextInfo) -> None:
        if config.backbone.arch != "t5":
            raise ConfigError(f"span corruption needs method.backbone.arch=t5, not {config.backbone.arch}")
        max_spans = round(info.max_length * config.noise_density / config.mean_span_length) + 1
        if max_spans > NUM_SENTINELS:
            raise ConfigError(
                f"data.max_length={info.max_length} gives up to {max_spans} spans but there are {NUM_SENTINELS} "
                "sentinel tokens; lower data.max_length or method.noise_density"
            )
        super().__init__(config, info)

    def pretext(self) -> SpanCorruptionPretext:
        return SpanCorruptionPretext(self.config.noise_density, self.config.mean_span_length)

    def collate(self):
        return collate_with_labels

    def forward(self, batch: dict[str, torch.Tensor]) -> MethodOutput:
        return MethodOutput(seq2seq_loss(self.backbone, batch), {})

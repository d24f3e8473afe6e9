"""Code-switching restore (Zan et al., 2022, "Bridging Cross-Lingual Gaps During Leveraging the Multilingual
Sequence-to-Sequence Pretraining for Text Generation and Understanding", CSR4mBART; seed 43).

The pretext task: replace words of a sentence with their translations from a bilingual lexicon (the
code-switched input), and train a sequence-to-sequence model to restore the original sentence:
:math:`-\\log p(x \\mid \\mathrm{CS}(x))`. The paper continues mBART's pretraining with MUSE lexicons;
here a small T5 learns it from scratch with the FreeDict English-French lexicon that Debian packages
(``dict-freedict-eng-fra``), so both languages meet in one encoder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from ssl_core.errors import ConfigError
from ssl_core.method import MethodOutput
from ssl_text.data.text import TextInfo, TextSample
from ssl_text.methods.common import TextMethod, backbone_config, seq2seq_loss
from ssl_text.models.backbones import TextBackboneConfig
from ssl_text.pretext.corruption import collate_with_labels
from ssl_text.tokenization import encode, tokenizer_from_json

_TOKEN = re.compile(r"(\w[\w'-]*)")


@dataclass
class CodeSwitchConfig:
    """Code-switching restore settings (``--set method.<name>=<value>``).

    Args:
        backbone: an encoder-decoder (``arch=t5``).
        switch_ratio: probability that a word found in the lexicon is replaced by one of its translations.
    """

    backbone: TextBackboneConfig = field(default_factory=lambda: backbone_config("t5"))
    switch_ratio: float = 0.3

    def __post_init__(self) -> None:
        if not 0 < self.switch_ratio <= 1:
            raise ConfigError(f"method.switch_ratio must lie in (0, 1], got {self.switch_ratio}")


def code_switch(text: str, lexicon: dict[str, list[str]], ratio: float) -> tuple[str, int]:
    """Replace each lexicon word of ``text`` with probability ``ratio`` by a uniformly drawn translation
    (capitalised like the word); returns the switched text and the number of words switched. Draws from
    torch's global generator (seeded per sample by the trainer)."""
    pieces, switched = _TOKEN.split(text), 0
    for i in range(1, len(pieces), 2):  # odd pieces are words
        options = lexicon.get(pieces[i].lower())
        if options and torch.rand(()) < ratio:
            new = options[int(torch.randint(len(options), ()))]
            pieces[i] = new[:1].upper() + new[1:] if pieces[i][:1].isupper() else new
            switched += 1
    return "".join(pieces), switched


class CodeSwitchPretext:
    """``sample -> (code-switched ids, original ids)``; picklable (the tokenizer is rebuilt lazily)."""

    def __init__(self, tokenizer_json: str, lexicon: dict[str, list[str]], ratio: float, max_length: int) -> None:
        self.tokenizer_json, self.lexicon, self.ratio, self.max_length = tokenizer_json, lexicon, ratio, max_length
        self._tok = None

    def __getstate__(self):
        return {**self.__dict__, "_tok": None}

    def __call__(self, sample: TextSample) -> tuple[list[int], list[int]]:
        if self._tok is None:
            self._tok = tokenizer_from_json(self.tokenizer_json)
        switched, _ = code_switch(sample.text, self.lexicon, self.ratio)
        return encode(self._tok, [switched], self.max_length)[0], sample.ids


class CodeSwitchRestore(TextMethod):
    """A T5 restores sentences from their code-switched versions.

    Shapes:
        - batch: ``input_ids``/``attention_mask`` ``(B, S)`` (code-switched), ``labels`` ``(B, T)`` (original)
        - :meth:`embed`: ``-> (B, hidden_size)``, mean of the encoder's last hidden states
    """

    def __init__(self, config: CodeSwitchConfig, info: TextInfo) -> None:
        if config.backbone.arch != "t5":
            raise ConfigError(
                f"code-switching restore needs an encoder-decoder: method.backbone.arch=t5, not {config.backbone.arch}"
            )
        if not info.lexicon:
            raise ConfigError("code-switching needs a bilingual lexicon: --set data.lexicon=eng-fra")
        super().__init__(config, info)

    def pretext(self) -> CodeSwitchPretext:
        return CodeSwitchPretext(self.info.tokenizer, self.info.lexicon, self.config.switch_ratio, self.info.max_length)

    def collate(self):
        return collate_with_labels

    def forward(self, batch: dict[str, torch.Tensor]) -> MethodOutput:
        loss = seq2seq_loss(self.backbone, batch)
        return MethodOutput(loss, {})

"""BIOptimus: curriculum masking and contextual initialisation of new tokens by distillation (Pavlova &
Makhlouf, 2023, "BIOptimus: Pre-training an Optimal Biomedical Language Model with Curriculum Learning for
Named Entity Recognition"; seed 45).

1. Curriculum masking: a masked LM whose mask ratio grows over training, easy to hard
   (``ssl_core.masking.mask_ratio_schedule``, 15% -> 20% by default: the paper's first and last rates).
2. New tokens with contextual initialisation: BIOptimus continues the pretraining of a BERT with new
   domain words added to its tokenizer, and initialises each new token's embedding by distilling what the
   model computes for the word's sub-token pieces in the sentences where it occurs. Here, in one run: the
   model first trains on the data's tokenizer (the "pretrained" model, ``switch_fraction`` of the steps);
   then the ``new_tokens`` most frequent words that the tokenizer splits into several pieces are added to it
   (whole-word ``AddedToken``\\ s); each new embedding :math:`e_w` starts as the mean of its pieces' input
   embeddings and is fitted, with the rest of the model fixed, so that the model's last hidden state at
   :math:`w` matches the mean of the teacher's last hidden states over the pieces of :math:`w`, in up to
   ``contexts_per_token`` corpus sentences:
   :math:`\\min_{e} \\frac{1}{|C|} \\sum_{c \\in C} \\lVert h_c(e)_{j_c} - \\frac{1}{|P_c|}\\sum_{p \\in P_c}
   h^{T}_c{}_p \\rVert^2`. Training then continues on the extended tokenizer, whose copy the run exports.

Simplified from the paper: the teacher is this model at the switch (not a separately pretrained BERT),
the mask ratio moves smoothly instead of in four phases, and whole-word masking and the corruption-free
last phase are left out.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import AddedToken, Tokenizer

from ssl_core.errors import ConfigError
from ssl_core.losses import masked_cross_entropy
from ssl_core.masking import mask_ratio_schedule, mlm_mask
from ssl_core.method import MethodOutput
from ssl_text.data.text import TextInfo, TextSample, pad_batch
from ssl_text.methods.common import TextMethod, backbone_config
from ssl_text.models.backbones import TextBackboneConfig
from ssl_text.models.heads import TiedLMHead
from ssl_text.tokenization import MASK_ID, NUM_SPECIAL, PAD_ID, dumps, encode, tokenizer_from_json

_WORD = re.compile(r"[^\W\d_]{3,}")  # alphabetic words of three letters or more


@dataclass
class BIOptimusConfig:
    """BIOptimus settings (``--set method.<name>=<value>``).

    Args:
        backbone: the encoder (``bert``: new embeddings enter as ``inputs_embeds``).
        mask_ratio_start, mask_ratio_end: the curriculum's mask ratio at the first and last step.
        schedule_shape: ``linear`` or ``cosine`` (``mask_ratio_schedule``).
        mask_replace_prob, random_replace_prob: BERT's corruption of the selected tokens (80% / 10%).
        new_tokens: words added to the tokenizer at the switch.
        min_count: a new word occurs at least this often in the corpus.
        switch_fraction: share of the steps trained on the data's tokenizer before the new tokens are added.
        contexts_per_token: corpus sentences per new word for the distillation.
        distill_steps, distill_batch_size, distill_lr: Adam steps, contexts per step and learning rate
            fitting the new embeddings.
    """

    backbone: TextBackboneConfig = field(default_factory=lambda: backbone_config("bert"))
    mask_ratio_start: float = 0.15
    mask_ratio_end: float = 0.2
    schedule_shape: str = "linear"
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    new_tokens: int = 128
    min_count: int = 5
    switch_fraction: float = 0.5
    contexts_per_token: int = 4
    distill_steps: int = 30
    distill_batch_size: int = 128
    distill_lr: float = 1e-2

    def __post_init__(self) -> None:
        mask_ratio_schedule(self.mask_ratio_start, self.mask_ratio_end, 1, self.schedule_shape)  # validates
        if not 0 < self.switch_fraction < 1:
            raise ConfigError(f"method.switch_fraction must lie in (0, 1), got {self.switch_fraction}")
        if self.new_tokens < 1 or self.contexts_per_token < 1 or self.distill_steps < 1:
            raise ConfigError("method.new_tokens, contexts_per_token and distill_steps must be positive")


def select_new_words(texts: Sequence[str], tokenizer: Tokenizer, k: int, min_count: int) -> list[str]:
    """The ``k`` most frequent words of ``texts`` (lower-cased, alphabetic, at least ``min_count``
    occurrences) that ``tokenizer`` splits into two or more pieces inside a sentence and that are not
    vocabulary entries already; ties by word."""
    counts = Counter(w for t in texts for w in _WORD.findall(t.lower()))
    ranked = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
    out = []
    for w in ranked:
        # a word that is already a vocabulary entry (as a word start) would not be added as a new token
        if tokenizer.token_to_id(w) is None and len(tokenizer.encode(" " + w, add_special_tokens=False).ids) >= 2:
            out.append(w)
            if len(out) == k:
                break
    return out


def extend_tokenizer(tokenizer_json: str, words: Sequence[str]) -> Tokenizer:
    """A copy of the tokenizer with ``words`` added as whole-word tokens (ids after the vocabulary).

    ``lstrip``: the new token takes the space before it, as the pieces it replaces did; ``normalized``: it
    matches after the tokenizer's normaliser (lower-casing), like the pieces.
    """
    tok = tokenizer_from_json(tokenizer_json)
    added = tok.add_tokens([AddedToken(w, single_word=True, lstrip=True, normalized=True) for w in words])
    if added != len(words):  # pragma: no cover - select_new_words only picks words outside the vocabulary
        raise ConfigError(f"only {added} of the {len(words)} new words could be added to the tokenizer")
    return tok


class Context(NamedTuple):
    """One corpus sentence holding a new word: its ids under both tokenizers, the positions of the word's
    pieces in the base ids, the position of the new token in the extended ids, and which new word it is."""

    base_ids: list[int]
    ext_ids: list[int]
    pieces: list[int]
    position: int
    word: int


def find_contexts(
    texts: Sequence[str], base: Tokenizer, ext: Tokenizer, first_new_id: int, per_word: int, max_length: int
) -> list[Context]:
    """Up to ``per_word`` contexts of every new token, in corpus order; the pieces of an occurrence are the
    base tokens whose character span lies inside the new token's span. Both tokenizations are cut to
    ``max_length``; occurrences cut off are skipped."""
    found: Counter[int] = Counter()
    out = []
    cut = max_length - 1  # positions kept before the final [SEP] (as :func:`~ssl_text.tokenization.encode`)
    for b, e in zip(base.encode_batch(list(texts)), ext.encode_batch(list(texts)), strict=True):
        base_ids, ext_ids = b.ids[:cut] + b.ids[-1:], e.ids[:cut] + e.ids[-1:]
        for j, t in enumerate(e.ids[:cut]):
            word = t - first_new_id
            if word < 0 or found[word] >= per_word:
                continue
            s, end = e.offsets[j]
            pieces = [i for i, (ps, pe) in enumerate(b.offsets) if s <= ps and pe <= end and pe > ps]
            if pieces and pieces[-1] < cut:
                out.append(Context(base_ids, ext_ids, pieces, j, word))
                found[word] += 1
    return out


def teacher_targets(backbone, contexts: Sequence[Context]) -> torch.Tensor:
    """The teacher's mean last hidden state over each context's pieces of the new word (no gradient).

    Shapes:
        - output: ``(C, D)``
    """
    dev = backbone.input_embeddings().weight.device
    base = pad_batch([c.base_ids for c in contexts])
    with torch.no_grad():
        h = backbone.states(base["input_ids"].to(dev), base["attention_mask"].to(dev))  # (C, L, D)
        return torch.stack([h[i, c.pieces].mean(0) for i, c in enumerate(contexts)])


def contextual_distillation_loss(
    backbone, new_embeddings: torch.Tensor, first_new_id: int, contexts: Sequence[Context], targets: torch.Tensor
) -> torch.Tensor:
    """Mean squared distance between the student's last hidden state at each new token and the teacher's
    target (:func:`teacher_targets`); the student is the same model reading the extended ids with
    ``new_embeddings`` as the new rows of its embedding table.

    Args:
        backbone: a :class:`~ssl_text.models.backbones.TextEncoder` (BERT-like: accepts ``inputs_embeds``).
        new_embeddings: the embeddings of the new tokens (the only tensor that receives a gradient).
        first_new_id: id of the first new token (the base vocabulary size).
        contexts: from :func:`find_contexts`.
        targets: the teacher's states for ``contexts``.

    Shapes:
        - new_embeddings: ``(K, D)``, targets: ``(C, D)``; output: scalar
    """
    dev = new_embeddings.device
    ext = {k: v.to(dev) for k, v in pad_batch([c.ext_ids for c in contexts]).items()}
    table = torch.cat([backbone.input_embeddings().weight[:first_new_id].detach(), new_embeddings])
    embeds = F.embedding(ext["input_ids"], table)  # (C, L, D)
    h = backbone.model(inputs_embeds=embeds, attention_mask=ext["attention_mask"]).last_hidden_state
    rows, cols = torch.arange(len(contexts), device=dev), torch.tensor([c.position for c in contexts], device=dev)
    pred = h[rows, cols]  # (C, D)
    return F.mse_loss(pred, targets)


_PREPARED: dict[tuple, tuple[list[str], str, list[Context]]] = {}


def _new_tokens(info: TextInfo, config: BIOptimusConfig) -> tuple[list[str], str, list[Context]]:
    """The new words, the extended tokenizer (JSON) and the distillation contexts of a corpus; cached for
    the same corpus and settings, so rebuilding the method (the probes' random-init baseline) is free."""
    c = config
    key = (hash(info.tokenizer), hash(tuple(map(tuple, info.corpus_ids))), c.new_tokens, c.min_count,
           c.contexts_per_token, info.max_length)  # fmt: skip
    if key not in _PREPARED:
        base = tokenizer_from_json(info.tokenizer)
        texts = base.decode_batch(info.corpus_ids, skip_special_tokens=True)
        words = select_new_words(texts, base, c.new_tokens, c.min_count)
        if not words:
            raise ConfigError(
                f"BIOptimus found no word seen {c.min_count} times that the tokenizer splits; lower "
                "method.min_count or data.vocab_size"
            )
        ext = extend_tokenizer(info.tokenizer, words)
        contexts = find_contexts(texts, base, ext, info.vocab_size, c.contexts_per_token, info.max_length)
        _PREPARED.clear()  # one corpus at a time
        _PREPARED[key] = words, dumps(ext), contexts
    return _PREPARED[key]


class BIOptimusPretext:
    """``sample -> (base ids, extended ids, masking seed)``; picklable (the tokenizer is rebuilt lazily).

    The mask itself is drawn in :meth:`BIOptimus.forward`, where the curriculum's current ratio is known,
    from a generator seeded by the per-sample seeds drawn here (so a resumed run masks alike)."""

    def __init__(self, ext_tokenizer_json: str, max_length: int) -> None:
        self.tokenizer_json, self.max_length, self._tok = ext_tokenizer_json, max_length, None

    def __getstate__(self):
        return {**self.__dict__, "_tok": None}

    def __call__(self, sample: TextSample) -> tuple[list[int], list[int], int]:
        if self._tok is None:
            self._tok = tokenizer_from_json(self.tokenizer_json)
        return sample.ids, encode(self._tok, [sample.text], self.max_length)[0], int(torch.randint(2**31, ()))


def collate_bioptimus(items: list[tuple[list[int], list[int], int]]) -> dict[str, torch.Tensor]:
    """Pad both tokenizations: ``input_ids``/``attention_mask`` (base), ``ext_input_ids``/``ext_attention_mask``
    (extended), and ``seed`` ``(B,)``."""
    batch = pad_batch([b for b, _, _ in items])
    ext = pad_batch([e for _, e, _ in items])
    batch["ext_input_ids"], batch["ext_attention_mask"] = ext["input_ids"], ext["attention_mask"]
    batch["seed"] = torch.tensor([s for _, _, s in items], dtype=torch.long)
    return batch


class BIOptimus(TextMethod):
    """Masked LM with a curriculum mask ratio; new word tokens added and initialised by contextual
    distillation at ``switch_fraction`` of training.

    Shapes:
        - batch: ``input_ids``/``attention_mask`` and ``ext_input_ids``/``ext_attention_mask`` ``(B, L)``,
          ``seed`` ``(B,)``
        - :meth:`embed`: ``-> (B, hidden_size)``; base-tokenizer ids are re-tokenized with the extended one
    """

    def __init__(self, config: BIOptimusConfig, info: TextInfo) -> None:
        if config.backbone.arch != "bert":
            raise ConfigError(f"BIOptimus is a BERT: method.backbone.arch=bert, not {config.backbone.arch}")
        if not info.corpus_ids:
            raise ConfigError("BIOptimus picks new words from the pretraining corpus, and the data gave none")
        words, ext_json, contexts = _new_tokens(info, config)
        self.base_vocab_size, self.new_words = info.vocab_size, words
        super().__init__(config, dataclasses.replace(info, tokenizer=ext_json, vocab_size=info.vocab_size + len(words)))
        self.base_tokenizer_json = info.tokenizer
        self.contexts = contexts
        self.head = TiedLMHead(self.backbone.embed_dim, self.backbone.embed_dim, self.info.vocab_size)
        self.register_buffer("extended", torch.zeros((), dtype=torch.bool))  # new tokens added (checkpointed)
        self._tokenizers: tuple[Tokenizer, Tokenizer] | None = None
        self.distill_losses: tuple[float, float] | None = None  # before / after, for the log and tests

    # ------------------------------------------------------------------------------------ schedule
    def schedules(self, total_steps: int, steps_per_epoch: int) -> Mapping[str, np.ndarray]:
        """The curriculum's mask ratio, and ``add_new_tokens``: 1 at the steps after which the new tokens join
        (from the end of the first ``switch_fraction`` of the steps on)."""
        c = self.config
        switch = max(1, round(c.switch_fraction * total_steps))  # steps trained on the data's tokenizer
        ratio = mask_ratio_schedule(c.mask_ratio_start, c.mask_ratio_end, total_steps, c.schedule_shape)
        return {"mask_ratio": ratio, "add_new_tokens": (np.arange(total_steps) + 1 >= switch).astype(float)}

    def mask_ratio(self) -> float:
        """This step's mask ratio (:attr:`~ssl_core.method.Method.current_step`)."""
        return self.current_step["mask_ratio"]

    def after_optimizer_step(self, step: int, values: Mapping[str, float]) -> None:
        if not self.extended and values.get("add_new_tokens", 0.0):
            self.add_new_tokens()

    # ------------------------------------------------------------------------------------ new tokens
    def add_new_tokens(self) -> None:
        """Initialise the new embeddings by contextual distillation and train on the extended tokenizer
        from now on."""
        emb = self.backbone.input_embeddings().weight
        v0, k = self.base_vocab_size, len(self.new_words)
        init = emb[v0:].detach().clone()
        sums, counts = torch.zeros_like(init), torch.zeros(k, device=init.device)
        for ctx in self.contexts:  # the common baseline: the mean of the pieces' input embeddings
            pieces = torch.tensor([ctx.base_ids[p] for p in ctx.pieces], device=init.device)
            sums[ctx.word] += emb[pieces].detach().mean(0)
            counts[ctx.word] += 1
        seen = counts > 0
        init[seen] = sums[seen] / counts[seen, None]
        new = init.clone().requires_grad_()
        losses = []
        if self.contexts:
            c = self.config
            was_training = self.training
            self.eval()  # no dropout while fitting
            targets = teacher_targets(self.backbone, self.contexts)
            opt = torch.optim.Adam([new], lr=c.distill_lr)
            g = torch.Generator().manual_seed(0)
            with torch.no_grad():
                losses.append(contextual_distillation_loss(self.backbone, new, v0, self.contexts, targets).item())
            for _ in range(c.distill_steps):
                idx = torch.randperm(len(self.contexts), generator=g)[: c.distill_batch_size].tolist()
                batch = [self.contexts[i] for i in idx]
                loss = contextual_distillation_loss(self.backbone, new, v0, batch, targets[idx])
                (new.grad,) = torch.autograd.grad(loss, new)
                opt.step()
            with torch.no_grad():
                losses.append(contextual_distillation_loss(self.backbone, new, v0, self.contexts, targets).item())
            self.train(was_training)
        with torch.no_grad():
            emb[v0:] = torch.where(seen[:, None], new.detach(), init)
        self.extended.fill_(True)
        self.distill_losses = (losses[0], losses[-1]) if losses else None

    # ------------------------------------------------------------------------------------ objective
    def pretext(self) -> BIOptimusPretext:
        return BIOptimusPretext(self.info.tokenizer, self.info.max_length)

    def collate(self):
        return collate_bioptimus

    def corrupt(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """Mask this step's share of the tokens (``mlm_mask`` at :meth:`mask_ratio`) of the current tokenization:
        ``(inputs, labels, attention_mask, vocabulary size)``. Shapes: ``(B, L)`` each."""
        c = self.config
        prefix = "ext_" if self.extended else ""
        ids, mask = batch[prefix + "input_ids"], batch[prefix + "attention_mask"]
        vocab = self.info.vocab_size if self.extended else self.base_vocab_size
        g = torch.Generator().manual_seed(int(batch["seed"].sum()))
        inputs, labels = mlm_mask(ids.cpu(), vocab, MASK_ID, self.mask_ratio(), special_token_ids=range(NUM_SPECIAL),
                                  mask_replace_prob=c.mask_replace_prob, random_replace_prob=c.random_replace_prob,
                                  generator=g)  # fmt: skip
        return inputs.to(ids.device), labels.to(ids.device), mask, vocab

    def forward(self, batch: dict[str, torch.Tensor]) -> MethodOutput:
        inputs, labels, mask, vocab = self.corrupt(batch)
        h = self.backbone.states(inputs, mask)
        selected = labels != -100
        # before the switch the new tokens are not in the vocabulary: score the base tokens only
        logits = self.head(h[selected], self.backbone.input_embeddings().weight)[:, :vocab]  # (M, V)
        loss = masked_cross_entropy(logits, labels[selected])
        with torch.no_grad():
            acc = (logits.argmax(-1) == labels[selected]).float().mean() if selected.any() else torch.zeros(())
        return MethodOutput(loss, {"mlm_accuracy": acc, "mask_ratio": self.mask_ratio()})

    def retokenize(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Base-tokenizer ids (the probes' inputs) re-tokenized with the extended tokenizer."""
        if self._tokenizers is None:
            self._tokenizers = tokenizer_from_json(self.base_tokenizer_json), tokenizer_from_json(self.info.tokenizer)
        base, ext = self._tokenizers
        rows = [
            r[m.bool()].tolist() for r, m in zip(batch["input_ids"].cpu(), batch["attention_mask"].cpu(), strict=True)
        ]
        new = encode(ext, base.decode_batch(rows, skip_special_tokens=True), self.info.max_length)
        return {k: v.to(batch["input_ids"].device) for k, v in pad_batch(new, PAD_ID).items()}

    @torch.no_grad()
    def embed(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.backbone(self.retokenize(x))

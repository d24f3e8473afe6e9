"""URLBERT (Li et al., 2024, "URLBERT: A Contrastive and Adversarial Pre-trained Model for URL
Classification"; seed 44).

A BERT over a BPE tokenizer trained on URLs (``data.tokenizer=url``) is pretrained with three terms:

1. masked LM on the URL (``ssl_core.masking.mlm_mask``, 15%, 80/10/10);
2. contrastive URL variants: two variants of each URL, each drawn by perturbing its parts independently
   (scheme ``http``/``https``, sub-domain dropped or ``www.`` added, last path segment dropped, query and
   fragment dropped), are pulled together against the other URLs of the batch with NT-Xent over projected
   mean-pooled embeddings (``ssl_core.losses.nt_xent``);
3. virtual adversarial training (Miyato et al., 2018; on word embeddings, Miyato et al., 2017): the input
   embeddings are perturbed along the direction that most changes the masked-LM predictions,
   :math:`r = \\epsilon \\, g / \\lVert g \\rVert` with :math:`g = \\nabla_d \\mathrm{KL}(p(\\cdot \\mid e)
   \\Vert p(\\cdot \\mid e + d))` at a random :math:`d` of norm :math:`\\xi` (one power iteration), and the
   model is trained to keep them: :math:`L_{vat} = \\mathrm{KL}(p(\\cdot \\mid e) \\Vert p(\\cdot \\mid e + r))`
   with the clean prediction held fixed.

:math:`L = L_{mlm} + \\lambda_{c} L_{con} + \\lambda_{v} L_{vat}`. The paper's URL variants and weights are
not spelled out in its abstract; the perturbations above are the URL parts a variant of the same page
changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.errors import ConfigError
from ssl_core.losses import masked_cross_entropy, nt_xent
from ssl_core.method import MethodOutput
from ssl_text.data.text import TextInfo, TextSample, pad_batch
from ssl_text.methods.common import TextMethod, backbone_config
from ssl_text.models.backbones import TextBackboneConfig
from ssl_text.models.heads import TiedLMHead
from ssl_text.pretext.corruption import MLMPretext, pad_targets
from ssl_text.tokenization import encode, tokenizer_from_json

URL_PARTS = ("scheme", "subdomain", "path", "query")


@dataclass
class URLBERTConfig:
    """URLBERT settings (``--set method.<name>=<value>``).

    Args:
        backbone: the encoder (``bert``: the perturbation enters as ``inputs_embeds``).
        mlm_probability: share of URL tokens masked (0.15).
        variant_probability: probability that a variant perturbs each URL part.
        temperature: NT-Xent temperature of the URL-variant task.
        contrastive_weight: :math:`\\lambda_c`.
        vat_weight: :math:`\\lambda_v`.
        vat_xi: :math:`\\xi`, norm of the random probe direction (per sequence, over its real tokens).
        vat_epsilon: :math:`\\epsilon`, norm of the adversarial perturbation (per sequence); the word
            embeddings of a 30-token URL have a norm of about 1.2 at initialisation.
    """

    backbone: TextBackboneConfig = field(default_factory=lambda: backbone_config("bert"))
    mlm_probability: float = 0.15
    variant_probability: float = 0.5
    temperature: float = 0.1
    contrastive_weight: float = 1.0
    vat_weight: float = 1.0
    vat_xi: float = 1e-3
    vat_epsilon: float = 0.1

    def __post_init__(self) -> None:
        if not 0 < self.variant_probability <= 1:
            raise ConfigError(f"method.variant_probability must lie in (0, 1], got {self.variant_probability}")
        if self.vat_xi <= 0 or self.vat_epsilon <= 0:
            raise ConfigError(f"method.vat_xi and vat_epsilon must be positive, got {self.vat_xi}, {self.vat_epsilon}")


def url_variant(url: str, parts: set[str] | frozenset[str]) -> str:
    """``url`` with each of ``parts`` (of :data:`URL_PARTS`) perturbed and everything else kept.

    ``scheme``: ``http`` <-> ``https``; ``subdomain``: drop the first label of a host of three or more labels,
    else prepend ``www.``; ``path``: drop the last non-empty path segment; ``query``: drop the query and the
    fragment. A part the URL lacks (no path, no query) stays as it is.
    """
    s = urlsplit(url)
    scheme, netloc, path, query, fragment = s.scheme, s.netloc, s.path, s.query, s.fragment
    if "scheme" in parts:
        scheme = {"http": "https", "https": "http"}.get(scheme, scheme)
    if "subdomain" in parts and s.hostname:
        labels = s.hostname.split(".")
        host = ".".join(labels[1:]) if len(labels) >= 3 else "www." + s.hostname
        at = netloc.lower().find(s.hostname)
        netloc = netloc[:at] + host + netloc[at + len(s.hostname) :]
    if "path" in parts:
        segments = path.rstrip("/").split("/")
        if len(segments) > 1 and segments[-1]:
            path = "/".join(segments[:-1]) + "/"
    if "query" in parts:
        query, fragment = "", ""
    return urlunsplit((scheme, netloc, path, query, fragment))


def draw_variant(url: str, probability: float) -> str:
    """A random variant: each URL part perturbed with ``probability`` (torch's global generator)."""
    return url_variant(url, {p for p in URL_PARTS if torch.rand(()) < probability})


class URLPretext:
    """``sample -> (masked ids, labels, variant a ids, variant b ids)``; picklable (the tokenizer is rebuilt
    lazily in each worker)."""

    def __init__(self, tokenizer_json: str, vocab_size: int, config: URLBERTConfig, max_length: int) -> None:
        self.tokenizer_json, self.max_length, self.p = tokenizer_json, max_length, config.variant_probability
        self.mlm = MLMPretext(vocab_size, config.mlm_probability, 0.8, 0.1)
        self._tok = None

    def __getstate__(self):
        return {**self.__dict__, "_tok": None}

    def __call__(self, sample: TextSample) -> tuple[list[int], list[int], list[int], list[int]]:
        if self._tok is None:
            self._tok = tokenizer_from_json(self.tokenizer_json)
        masked, labels = self.mlm(sample)
        variants = [draw_variant(sample.text, self.p), draw_variant(sample.text, self.p)]
        a, b = encode(self._tok, variants, self.max_length)
        return masked, labels, a, b


def collate_url_views(items: list[tuple[list[int], list[int], list[int], list[int]]]) -> dict[str, torch.Tensor]:
    """Pad the masked URLs (``input_ids``, ``attention_mask``, ``labels``) and both variants (``a_*``, ``b_*``)."""
    batch = pad_batch([x[0] for x in items])
    batch["labels"] = pad_targets([x[1] for x in items])
    for key, k in (("a", 2), ("b", 3)):
        view = pad_batch([x[k] for x in items])
        batch[f"{key}_input_ids"], batch[f"{key}_attention_mask"] = view["input_ids"], view["attention_mask"]
    return batch


def _normalize_per_sequence(d: torch.Tensor) -> torch.Tensor:
    """Scale each sequence's perturbation ``(L, D)`` to unit L2 norm. Shapes: ``(B, L, D) -> (B, L, D)``."""
    return d / d.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None]


def _kl(clean_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """:math:`\\mathrm{KL}(p \\Vert q)` averaged over rows, ``p`` from ``clean_logits`` (held fixed)."""
    return F.kl_div(F.log_softmax(logits, -1), F.log_softmax(clean_logits.detach(), -1), reduction="batchmean",
                    log_target=True)  # fmt: skip


def virtual_adversarial_loss(
    predict: Callable[[torch.Tensor], torch.Tensor],
    embeds: torch.Tensor,
    mask: torch.Tensor,
    clean_logits: torch.Tensor,
    xi: float,
    epsilon: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Virtual adversarial loss with one power iteration (Miyato et al., 2018, "Virtual Adversarial
    Training", Alg. 1; per-sequence norms on word embeddings as Miyato et al., 2017).

    Draw :math:`d \\sim \\mathcal N(0, I)` on the real tokens, scale it to norm ``xi``, take
    :math:`g = \\nabla_d \\mathrm{KL}(p(e) \\Vert p(e + d))`, set :math:`r = \\epsilon g / \\lVert g \\rVert`
    (no gradient through ``r``) and return :math:`\\mathrm{KL}(p(e) \\Vert p(e + r))` with the clean
    prediction :math:`p(e)` fixed; the gradient reaches the model and ``embeds`` through :math:`p(e + r)`.

    Args:
        predict: ``embeds -> logits`` of the model under perturbation (the same rows as ``clean_logits``).
        embeds: input embeddings to perturb.
        mask: 1 on real tokens (padding is never perturbed).
        clean_logits: the unperturbed logits.
        xi: norm of the probe direction.
        epsilon: norm of the adversarial perturbation.
        generator: source of the random direction.

    Shapes:
        - embeds: ``(B, L, D)``, mask: ``(B, L)``, clean_logits and ``predict``'s output: ``(N, C)``
        - output: scalar
    """
    m = mask[..., None].to(embeds.dtype)
    d = torch.randn(embeds.shape, generator=generator).to(embeds) * m
    d = (xi * _normalize_per_sequence(d)).requires_grad_()
    (g,) = torch.autograd.grad(_kl(clean_logits, predict(embeds.detach() + d)), d)
    r_adv = epsilon * _normalize_per_sequence(g.detach() * m)
    return _kl(clean_logits, predict(embeds + r_adv))


class URLBERT(TextMethod):
    """Masked LM, contrastive URL variants and virtual adversarial training on one BERT.

    Shapes:
        - batch: ``input_ids``/``attention_mask``/``labels`` (masked URL), ``a_input_ids``/``a_attention_mask``
          and ``b_...`` (its two variants), each ``(B, L)``
        - :meth:`embed`: ``-> (B, hidden_size)``, mean of the last hidden states
    """

    def __init__(self, config: URLBERTConfig, info: TextInfo) -> None:
        if config.backbone.arch != "bert":
            raise ConfigError(f"URLBERT is a BERT: method.backbone.arch=bert, not {config.backbone.arch}")
        super().__init__(config, info)
        d = config.backbone.hidden_size
        self.head = TiedLMHead(d, d, info.vocab_size)
        self.projector = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))  # SimCLR's projection head

    def pretext(self) -> URLPretext:
        return URLPretext(self.info.tokenizer, self.info.vocab_size, self.config, self.info.max_length)

    def collate(self):
        return collate_url_views

    def forward(self, batch: dict[str, torch.Tensor]) -> MethodOutput:
        c = self.config
        ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        word = self.backbone.input_embeddings()
        selected = labels != -100

        def predict(embeds: torch.Tensor) -> torch.Tensor:  # (M, V) masked-LM logits at the selected tokens
            h = self.backbone.model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
            return self.head(h[selected], word.weight)

        embeds = word(ids)  # (B, L, D)
        logits = predict(embeds)
        mlm = masked_cross_entropy(logits, labels[selected])
        vat = logits.sum() * 0.0  # a batch without masked tokens has no prediction to perturb
        if selected.any():
            vat = virtual_adversarial_loss(predict, embeds, mask, logits, c.vat_xi, c.vat_epsilon)
        views = ({"input_ids": batch[f"{v}_input_ids"], "attention_mask": batch[f"{v}_attention_mask"]} for v in "ab")
        z_a, z_b = (self.projector(self.backbone(view)) for view in views)  # (B, D) each
        con = nt_xent(z_a, z_b, c.temperature)
        loss = mlm + c.contrastive_weight * con + c.vat_weight * vat
        logs = {"mlm_loss": mlm.detach(), "contrastive_loss": con.detach(), "vat_loss": vat.detach()}
        return MethodOutput(loss, logs)

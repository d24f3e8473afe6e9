"""URLBERT (seed 44): URL variants change only the parts they name, virtual adversarial training against its
closed form for a linear softmax model (values and gradients), and a training step on URLs."""

import math
from urllib.parse import urlsplit

import pytest
import torch
import torch.nn.functional as F

from ssl_text.data.text import TextInfo, TextSample
from ssl_text.methods.urlbert import URL_PARTS, URLBERT, URLBERTConfig, url_variant, virtual_adversarial_loss
from ssl_text.models.backbones import TextBackboneConfig
from ssl_text.tokenization import TokenizerSpec, dumps, encode, train_tokenizer, vocabulary_size

URLS = [
    "https://docs.python.org/3/library/urllib.parse.html?highlight=split#module",
    "http://www.example.com/a/b/c",
    "https://github.com/pytorch/pytorch/issues/1234",
    "https://huggingface.co/docs/transformers/index",
    "http://bugs.python.org/issue12345?page=2",
    "https://en.wikipedia.org/wiki/Uniform_Resource_Locator",
]

FIELDS = {"scheme": ("scheme",), "subdomain": ("netloc",), "path": ("path",), "query": ("query", "fragment")}


@pytest.mark.parametrize("part", URL_PARTS)
def test_a_variant_changes_only_the_part_it_names(part):
    for url in URLS:
        s, v = urlsplit(url), urlsplit(url_variant(url, {part}))
        for name in ("scheme", "netloc", "path", "query", "fragment"):
            if name not in FIELDS[part]:
                assert getattr(v, name) == getattr(s, name), (url, part, name)
    assert url_variant("http://a.b.example.com/x/y", {"scheme"}) == "https://a.b.example.com/x/y"
    assert url_variant("http://a.b.example.com/x/y", {"subdomain"}) == "http://b.example.com/x/y"
    assert url_variant("https://example.com:8080/x", {"subdomain"}) == "https://www.example.com:8080/x"
    assert url_variant("http://example.com/x/y.html", {"path"}) == "http://example.com/x/"
    assert url_variant("http://example.com/x?q=1#top", {"query"}) == "http://example.com/x"
    assert url_variant(URLS[0], set()) == URLS[0]


def _linear_reference(w, x, mask, xi, eps, seed):
    """VAT for the model ``softmax(W^T vec(x))``, per sample, with the probe gradient in closed form:
    ``d/dd KL(p || softmax(W^T vec(x + d))) = W (q - p)``."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(x.shape, generator=g) * mask[..., None]
    losses = []
    for b in range(x.shape[0]):
        xb = x[b] * mask[b, :, None]
        p = torch.softmax(xb.flatten() @ w, -1)
        with torch.no_grad():
            d = xi * u[b] / u[b].norm()
            q = torch.softmax((xb + d * mask[b, :, None]).flatten() @ w, -1)
            grad = (w @ (q - p)).view_as(xb) * mask[b, :, None]
            r = eps * grad / grad.norm()
        q_adv = torch.softmax((xb + r).flatten() @ w, -1)
        p = p.detach()
        losses.append(sum(p[c] * (torch.log(p[c]) - torch.log(q_adv[c])) for c in range(len(p))))
    return torch.stack(losses).mean()


def test_virtual_adversarial_loss_matches_its_closed_form_for_a_linear_model():
    torch.manual_seed(0)
    x = torch.randn(3, 4, 5, requires_grad=True)
    w = torch.randn(20, 7, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]])

    def predict(e):
        return (e * mask[..., None]).flatten(1) @ w

    ours = virtual_adversarial_loss(
        predict, x, mask, predict(x), xi=1e-2, epsilon=0.5, generator=torch.Generator().manual_seed(3)
    )
    ref = _linear_reference(w, x, mask, 1e-2, 0.5, seed=3)
    torch.testing.assert_close(ours, ref)
    assert ours > 0
    g_ours = torch.autograd.grad(ours, (w, x))
    g_ref = torch.autograd.grad(ref, (w, x))
    for a, b in zip(g_ours, g_ref, strict=True):
        torch.testing.assert_close(a, b)


def test_the_adversarial_direction_beats_a_random_one():
    torch.manual_seed(0)
    x, w, mask = torch.randn(8, 4, 5), torch.randn(20, 7), torch.ones(8, 4)

    def predict(e):
        return e.flatten(1) @ w

    vat = virtual_adversarial_loss(predict, x, mask, predict(x), xi=1e-3, epsilon=0.5)
    r = torch.randn_like(x)
    r = 0.5 * r / r.flatten(1).norm(dim=1)[:, None, None]
    rand = F.kl_div(
        F.log_softmax(predict(x + r), -1), F.log_softmax(predict(x), -1), reduction="batchmean", log_target=True
    )
    assert vat > 2 * rand


def _url_info():
    tok = train_tokenizer(URLS * 10, TokenizerSpec("url", 150, 1))
    return TextInfo(dumps(tok), "url", vocabulary_size(tok), 32), tok


def test_urlbert_batch_and_step():
    info, tok = _url_info()
    backbone = TextBackboneConfig(
        arch="bert", hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, dropout=0
    )
    torch.manual_seed(0)
    m = URLBERT(URLBERTConfig(backbone=backbone, mlm_probability=0.3), info)
    samples = [TextSample(ids, u, -1) for ids, u in zip(encode(tok, URLS, 32), URLS, strict=True)]
    pretext = m.pretext()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    losses = []
    for step in range(6):
        torch.manual_seed(step)
        batch = m.collate()([pretext(s) for s in samples])
        for v in "ab":  # every variant decodes to a variant of its URL: the host's registered domain stays
            for row, url in zip(batch[f"{v}_input_ids"], URLS, strict=True):
                text = tok.decode([t for t in row.tolist() if t > 4])
                assert urlsplit(url).hostname.split(".")[-2] in text
        out = m(batch)
        assert set(out.logs) == {"mlm_loss", "contrastive_loss", "vat_loss"} and out.logs["vat_loss"] >= 0
        torch.testing.assert_close(
            out.loss, out.logs["mlm_loss"] + out.logs["contrastive_loss"] + out.logs["vat_loss"], rtol=1e-5, atol=1e-5
        )
        opt.zero_grad()
        out.loss.backward()
        assert m.projector[0].weight.grad is not None and m.head.dense.weight.grad is not None
        opt.step()
        losses.append(out.loss.item())
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]

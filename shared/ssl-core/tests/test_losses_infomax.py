"""DGI's local-global objective against a naive reference written from the paper's eq. 1 (values and gradients);
the comparison with PyG's DeepGraphInfomax lives in ssl-graph's tests, where PyG is installed."""

import pytest
import torch

from ssl_core.losses import DGILoss, dgi_loss


def naive_dgi(h_real, h_fake, summary, index, w):
    """DGI eq. 1 local by local: -(1/2N) sum [log D(h_i, s) + log(1 - D(h~_i, s))], D = sigmoid(h^T W s)."""
    terms = []
    for i in range(len(h_real)):
        s = summary[index[i]]
        terms.append(torch.log(torch.sigmoid(h_real[i] @ w @ s)))
        terms.append(torch.log(1 - torch.sigmoid(h_fake[i] @ w @ s)))
    return -torch.stack(terms).mean()


def _grads(fn, *tensors):
    ts = [t.clone().requires_grad_(True) for t in tensors]
    out = fn(*ts)
    out.backward()
    return out.detach(), [t.grad for t in ts]


@pytest.mark.parametrize("n,d,s", [(9, 6, 3), (1, 4, 1), (17, 5, 17)])
def test_dgi_loss_matches_naive_values_and_gradients(n, d, s):
    g = torch.Generator().manual_seed(n)
    h, hf = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64)
    summary = torch.randn(s, d, generator=g, dtype=torch.float64)
    w = torch.randn(d, d, generator=g, dtype=torch.float64) * 0.3
    index = torch.sort(torch.randint(0, s, (n,), generator=g)).values
    v1, g1 = _grads(lambda a, b, c, e: dgi_loss(a, b, c, index, e), h, hf, summary, w)
    v2, g2 = _grads(lambda a, b, c, e: naive_dgi(a, b, c, index, e), h, hf, summary, w)
    torch.testing.assert_close(v1, v2)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(DGILoss()(h, hf, summary, index, w), v1)


def test_dgi_loss_names_bad_shapes():
    h, s, w = torch.randn(5, 4), torch.randn(2, 4), torch.randn(4, 4)
    index = torch.zeros(5, dtype=torch.long)
    with pytest.raises(ValueError, match="one \\(N, D\\) shape"):
        dgi_loss(h, h[:4], s, index, w)
    with pytest.raises(ValueError, match="\\(N,\\) index"):
        dgi_loss(h, h, s, index[:3], w)
    with pytest.raises(ValueError, match="bilinear weight"):
        dgi_loss(h, h, s, index, torch.randn(4, 3))

"""Every registered graph method: one training step end to end, embeddings, and a falling loss."""

import dataclasses

import pytest
import torch

from ssl_core.testing import fit_fixed_batch
from ssl_core.train.data import PretextDataset
from ssl_graph.data import GraphDataConfig, load_data
from ssl_graph.modality import modality
from ssl_graph.models.encoder import EncoderConfig

SMALL_ENCODER = {"hidden_dim": 16, "num_layers": 2}


@pytest.fixture(scope="module")
def mutag(tmp_path_factory):
    return load_data(GraphDataConfig(cache_dir=str(tmp_path_factory.mktemp("cache"))))


def small_config(recipe):
    cfg = recipe.config
    if hasattr(cfg, "encoder"):
        enc = dataclasses.replace(cfg.encoder, **SMALL_ENCODER)
        cfg = dataclasses.replace(cfg, encoder=enc)
    if hasattr(cfg, "model"):
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, dim=32, depth=1))
    return cfg


def batch_of(method, data, n=16, seed=0):
    items = PretextDataset(data, method.pretext())
    collate = method.collate()
    return collate([items[(i, seed * 1000 + i)] for i in range(n)])


# recipes on the modality's data (MUTAG); those with data of their own (graph/seenet: an evolving graph) are
# tested in their own files
STATIC = sorted(name for name, recipe in modality.recipes.items() if recipe.data is None)


@pytest.mark.parametrize("name", STATIC)
def test_step_embed_and_loss_falls(name, mutag):
    recipe = modality.recipes[name]
    torch.manual_seed(0)
    method = recipe.method(small_config(recipe), mutag.info)
    batch = batch_of(method, mutag.train)
    out = method(batch)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    grads = [p.grad for p in method.backbone.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads), "every backbone parameter gets a gradient"
    method.eval()
    emb = method.embed(mutag.collate_fn(mutag.probe_test.inputs[:5]))
    assert emb.shape == (5, method.backbone_spec().embed_dim) and torch.isfinite(emb).all()
    method.train()

    # fixed batch: the objective must fall (the methods' own randomness is fixed by the seed)
    losses = fit_fixed_batch(method, batch, 30, lr=5e-3, optimizer="adam", values={"ema_momentum": 0.9}, reseed=2)
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4, losses


def test_bgrl_target_follows_the_online_encoder(mutag):
    recipe = modality.recipes["bgrl"]
    method = recipe.method(small_config(recipe), mutag.info)
    with torch.no_grad():
        for p in method.backbone.parameters():
            p.add_(1.0)
    before = [p.clone() for p in method.target.parameters()]
    method.after_optimizer_step(0, {"ema_momentum": 0.75})
    for b, t, s in zip(before, method.target.parameters(), method.backbone.parameters(), strict=True):
        torch.testing.assert_close(t, 0.75 * b + 0.25 * s)


def test_paretognn_logs_mgda_weights_on_the_simplex(mutag):
    recipe = modality.recipes["paretognn"]
    torch.manual_seed(0)
    method = recipe.method(small_config(recipe), mutag.info)
    out = method(batch_of(method, mutag.train))
    w = torch.tensor([out.logs[f"w_{t}"] for t in method.config.tasks])
    assert (w >= 0).all() and abs(w.sum().item() - 1) < 1e-5
    assert set(out.logs) >= {"loss_link", "loss_ming", "loss_minsg", "loss_recon"}


def test_encoders_and_readouts(mutag):
    from ssl_graph.models import GraphEncoder

    batch = mutag.collate_fn(mutag.train[:4])
    for kind in ("gin", "gcn", "gat"):
        for jk, readout in (("cat", "sum"), ("last", "mean"), ("last", "max")):
            enc = GraphEncoder(EncoderConfig(kind=kind, hidden_dim=8, num_layers=3, jk=jk, readout=readout), 7)
            out = enc(batch)
            assert out.shape == (4, enc.embed_dim) and enc.embed_dim == (24 if jk == "cat" else 8)
    # the sum readout of graph g is the sum of its nodes' representations
    enc = GraphEncoder(EncoderConfig(hidden_dim=8, num_layers=2), 7).eval()
    h = enc.node_embeddings(batch.x, batch.edge_index)
    torch.testing.assert_close(enc(batch)[1], h[batch.batch == 1].sum(0))


def test_graphgpt_masked_token_objective_is_bidirectional(mutag):
    from ssl_graph.methods.graphgpt import GraphGPT, GraphGPTConfig
    from ssl_graph.models.graph_transformer import GraphTransformerConfig

    torch.manual_seed(0)
    ntp = GraphGPT(GraphGPTConfig(model=GraphTransformerConfig(dim=16, depth=1)), mutag.info)
    smtp = GraphGPT(GraphGPTConfig(model=GraphTransformerConfig(dim=16, depth=1), objective="smtp"), mutag.info)
    assert ntp.backbone.config.causal and not smtp.backbone.config.causal
    batch = batch_of(smtp, mutag.train)
    out = smtp(batch)
    out.loss.backward()
    assert torch.isfinite(out.loss) and 0 < float(out.logs["mask_ratio"]) <= 1
    # causal attention: changing the last token leaves the earlier hidden states unchanged; bidirectional: not
    ids, pad = batch
    ids2 = ids.clone()
    last = (~pad).sum(1) - 1
    ids2[torch.arange(len(ids)), last] = 3
    for model, same in ((ntp, True), (smtp, False)):
        model.eval()
        h1, h2 = model.backbone.encode(ids, pad), model.backbone.encode(ids2, pad)
        assert torch.allclose(h1[0, : last[0]], h2[0, : last[0]], atol=1e-5) == same

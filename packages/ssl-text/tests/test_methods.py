"""Each objective against a reference: masking proportions against Hugging Face's collator, losses against
the transformers task models with the same weights (values and gradients), span corruption statistics."""

import pytest
import torch

from ssl_text.data.lexicon import load_lexicon
from ssl_text.data.text import TextSample
from ssl_text.methods.causal_lm import CausalLM, CausalLMConfig
from ssl_text.methods.code_switch import CodeSwitchConfig, CodeSwitchRestore, code_switch
from ssl_text.methods.electra import Electra, ElectraConfig
from ssl_text.methods.mlm import MLM, MLMConfig
from ssl_text.methods.rts import RTS, RTSConfig
from ssl_text.methods.slm import SLM, SLMConfig
from ssl_text.methods.t5_span import T5SpanConfig, T5SpanCorruption, sentinel_corruption
from ssl_text.models.backbones import TextBackboneConfig
from ssl_text.pretext import MLMPretext, collate_with_labels, pad_targets
from ssl_text.tokenization import FIRST_SENTINEL_ID, MASK_ID, NUM_SPECIAL, to_transformers, tokenizer_from_json


def tiny_backbone(arch: str) -> TextBackboneConfig:
    return TextBackboneConfig(arch=arch, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, dropout=0.0)


def _batch(method, samples, seed=0):
    torch.manual_seed(seed)
    pretext = method.pretext()
    return method.collate()([pretext(s) for s in samples])


def test_mlm_masking_proportions_match_datacollator(tiny_info):
    from transformers import DataCollatorForLanguageModeling

    ids = torch.randint(NUM_SPECIAL, tiny_info.vocab_size, (4000, 20))
    ids[:, 0], ids[:, -1] = 2, 3  # [CLS] ... [SEP]
    torch.manual_seed(0)
    pretext = MLMPretext(tiny_info.vocab_size, 0.15, 0.8, 0.1)
    ours = collate_with_labels([pretext(TextSample(row.tolist(), "", -1)) for row in ids])
    hf_tok = to_transformers(tokenizer_from_json(tiny_info.tokenizer), 20)
    collator = DataCollatorForLanguageModeling(hf_tok, mlm_probability=0.15, seed=0)
    theirs = collator([{"input_ids": row.tolist()} for row in ids])

    def proportions(inputs, labels):
        sel = labels != -100
        return torch.tensor(
            [
                sel.float().mean(),
                (inputs[sel] == MASK_ID).float().mean(),
                ((inputs[sel] != MASK_ID) & (inputs[sel] != labels[sel])).float().mean(),
                (inputs[sel] == labels[sel]).float().mean(),
            ]
        )

    p_ours, p_hf = proportions(ours["input_ids"], ours["labels"]), proportions(theirs["input_ids"], theirs["labels"])
    # HF never selects [CLS]/[SEP] either; 2 of 20 positions are special, so both select 15% of 18
    torch.testing.assert_close(p_ours, p_hf, atol=0.012, rtol=0)
    torch.testing.assert_close(p_ours, torch.tensor([0.15 * 18 / 20, 0.8, 0.1, 0.1]), atol=0.012, rtol=0)
    assert not (ours["labels"][:, [0, -1]] != -100).any()


def _copy_grads_equal(a, b, atol=1e-5):
    for (na, pa), (nb, pb) in zip(a, b, strict=True):
        torch.testing.assert_close(pa.grad, pb.grad, atol=atol, rtol=1e-4, msg=f"{na} vs {nb}")


def test_mlm_loss_equals_bert_for_masked_lm(tiny_info, tiny_samples):
    from transformers import BertForMaskedLM

    torch.manual_seed(0)
    m = MLM(MLMConfig(backbone=tiny_backbone("bert")), tiny_info)
    ref = BertForMaskedLM(m.backbone.model.config)
    state = {f"bert.{k}": v for k, v in m.backbone.model.state_dict().items()}
    head = m.head
    state |= {
        "cls.predictions.transform.dense.weight": head.dense.weight,
        "cls.predictions.transform.dense.bias": head.dense.bias,
        "cls.predictions.transform.LayerNorm.weight": head.norm.weight,
        "cls.predictions.transform.LayerNorm.bias": head.norm.bias,
        "cls.predictions.bias": head.bias,
        "cls.predictions.decoder.bias": head.bias,
        "cls.predictions.decoder.weight": m.backbone.model.embeddings.word_embeddings.weight,
    }
    ref.load_state_dict(state, strict=False)
    m.eval(), ref.eval()
    batch = _batch(m, tiny_samples(tiny_info)[:8])
    ours = m(batch).loss
    theirs = ref(**batch).loss
    torch.testing.assert_close(ours, theirs)
    ours.backward(), theirs.backward()
    torch.testing.assert_close(
        m.backbone.model.embeddings.word_embeddings.weight.grad, ref.bert.embeddings.word_embeddings.weight.grad
    )


def test_causal_lm_loss_equals_gpt2_lm_head_model(tiny_info, tiny_samples):
    from transformers import GPT2LMHeadModel

    torch.manual_seed(0)
    m = CausalLM(CausalLMConfig(backbone=tiny_backbone("gpt2")), tiny_info)
    ref = GPT2LMHeadModel(m.backbone.model.config)
    ref.transformer.load_state_dict(m.backbone.model.state_dict())
    m.eval(), ref.eval()
    batch = _batch(m, tiny_samples(tiny_info)[:8])
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    ours, theirs = m(batch).loss, ref(**batch, labels=labels).loss
    torch.testing.assert_close(ours, theirs)
    ours.backward(), theirs.backward()
    torch.testing.assert_close(m.backbone.model.wte.weight.grad, ref.transformer.wte.weight.grad)


def test_seq2seq_loss_equals_t5_for_conditional_generation(tiny_info, tiny_samples):
    from transformers import T5ForConditionalGeneration

    torch.manual_seed(0)
    m = T5SpanCorruption(T5SpanConfig(backbone=tiny_backbone("t5")), tiny_info)
    ref = T5ForConditionalGeneration(m.backbone.model.config)
    ref.load_state_dict(
        m.backbone.model.state_dict() | {"lm_head.weight": m.backbone.model.shared.weight}, strict=False
    )
    m.eval(), ref.eval()
    batch = _batch(m, tiny_samples(tiny_info)[:8])
    ours = m(batch).loss
    theirs = ref(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    torch.testing.assert_close(ours, theirs)


def test_span_corruption_statistics_and_reconstruction():
    torch.manual_seed(0)
    from ssl_text.methods.t5_span import SpanCorruptionPretext

    pretext = SpanCorruptionPretext(0.15, 3.0)
    body = list(range(100, 200))  # 100 content tokens
    noisy, spans = 0, 0
    for _ in range(300):
        inputs, targets = pretext(TextSample([2, *body, 3], "", -1))
        hidden = [t for t in targets[:-1] if t < FIRST_SENTINEL_ID or t >= 100]
        sentinels_in = [t for t in inputs if FIRST_SENTINEL_ID <= t < 100]
        noisy += len(hidden)
        spans += len(sentinels_in)
        # putting each target span back at its sentinel restores the text
        fill, cur = {}, None
        for t in targets[:-1]:
            if FIRST_SENTINEL_ID <= t < 100:
                cur = t
                fill[cur] = []
            else:
                fill[cur].append(t)
        restored = [x for t in inputs[1:-1] for x in (fill[t] if t in fill else [t])]
        assert restored == body
    assert noisy / 300 == 15  # exactly round(100 * 0.15) noise tokens per text
    assert noisy / spans == pytest.approx(3.0, abs=0.01)  # round(15 / 3) = 5 spans per text
    assert sentinel_corruption([1, 2, 3, 4, 5], [False, True, True, False, False]) == (
        [1, FIRST_SENTINEL_ID, 4, 5],
        [FIRST_SENTINEL_ID, 2, 3, FIRST_SENTINEL_ID + 1],
    )


def test_electra_shares_embeddings_and_labels_replacements(tiny_info, tiny_samples):
    torch.manual_seed(0)
    m = Electra(ElectraConfig(backbone=tiny_backbone("electra")), tiny_info)
    assert m.generator.embeddings.word_embeddings is m.backbone.model.embeddings.word_embeddings
    batch = _batch(m, tiny_samples(tiny_info)[:8])
    sel = batch["labels"] != -100
    assert (batch["input_ids"][sel] == MASK_ID).all()  # the generator sees [MASK] at every selected token
    out = m(batch)
    assert out.loss.item() == pytest.approx(out.logs["mlm_loss"].item() + 50 * out.logs["disc_loss"].item(), rel=1e-5)
    out.loss.backward()
    assert m.generator.encoder.layer[0].attention.self.query.weight.grad is not None
    assert m.discriminator_head.out.weight.grad is not None


def test_rts_and_slm_swap_with_random_tokens(tiny_info, tiny_samples):
    torch.manual_seed(0)
    for cls, cfg in (
        (RTS, RTSConfig(backbone=tiny_backbone("roberta"))),
        (SLM, SLMConfig(backbone=tiny_backbone("roberta"))),
    ):
        m = cls(cfg, tiny_info)
        batch = _batch(m, tiny_samples(tiny_info, 400))
        sel = batch["labels"] != -100
        assert (batch["input_ids"] != MASK_ID).all()  # no [MASK]: every selected token is swapped
        assert 0.1 < sel[batch["attention_mask"].bool()].float().mean() < 0.2
        out = m({k: v[:16] for k, v in batch.items()})
        out.loss.backward()
        assert torch.isfinite(out.loss)


def test_code_switching_uses_the_lexicon(tiny_info, tiny_samples):
    lex = {"cat": ["chat"], "dog": ["chien"], "apple": ["pomme"]}
    torch.manual_seed(0)
    text, n = code_switch("The cat and the Dog ate an apple.", lex, 1.0)
    assert text == "The chat and the Chien ate an pomme." and n == 3
    assert code_switch("The cat.", lex, 1e-9) == ("The cat.", 0)
    info = type(tiny_info)(**{**tiny_info.__dict__, "lexicon": load_lexicon("eng-fra")})
    m = CodeSwitchRestore(CodeSwitchConfig(backbone=tiny_backbone("t5")), info)
    batch = _batch(m, tiny_samples(info)[:8])
    assert (batch["labels"] == pad_targets([s.ids for s in tiny_samples(info)[:8]])).all()  # targets: the originals
    m(batch).loss.backward()


@pytest.mark.parametrize("task", ["paragraph", "document"])
def test_span_origin_pairs_are_labelled_by_origin(task):
    from ssl_text.methods.span_origin import SpanPairPretext, collate_span_pairs

    # paragraph p of document d holds the tokens 1000 * (d + 1) + 100 * p + (0..19)
    paras = [[2, *[1000 * (d + 1) + 100 * p + i for i in range(20)], 3] for d in range(3) for p in range(4)]
    docs = [d for d in range(3) for _ in range(4)]
    pretext = SpanPairPretext(paras, docs, task, max_length=23)
    torch.manual_seed(0)
    labels = []
    for k in range(200):
        sample = TextSample(paras[k % 12], "", docs[k % 12])
        ids, seg, y = pretext(sample)
        sep = ids.index(3)
        a, b = ids[1:sep], ids[sep + 1 : -1]
        assert seg == [0] * (len(a) + 2) + [1] * (len(b) + 1) and 0 < len(a) <= 10 and 0 < len(b) <= 10
        same = (a[0] // 100 == b[0] // 100) if task == "paragraph" else (a[0] // 1000 == b[0] // 1000)
        assert y == int(same)
        if task == "document" and y:
            assert a[0] // 100 != b[0] // 100  # the positive span comes from another paragraph
        labels.append(y)
    assert 0.35 < sum(labels) / len(labels) < 0.65
    batch = collate_span_pairs([pretext(TextSample(paras[0], "", 0)) for _ in range(4)])
    assert batch["labels"].shape == (4,) and batch["token_type_ids"].shape == batch["input_ids"].shape

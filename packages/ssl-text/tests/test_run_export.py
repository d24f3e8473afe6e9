"""A recipe runs end to end from the command line on user data, and its export loads in transformers."""

import json

import pytest
import torch

from helpers import run_selfsup
from ssl_core import load_backbone
from ssl_text.data.text import pad_batch
from ssl_text.tokenization import tokenizer_from_json

TINY = [
    "train.batch_size=16",
    "train.max_minutes=null",
    "train.progress=false",
    "method.backbone.hidden_size=16",
    "method.backbone.num_heads=2",
    "method.backbone.num_layers=1",
    "method.backbone.intermediate_size=32",
    "data.vocab_size=200",
    "data.min_frequency=1",
    "data.max_length=24",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "texts.jsonl"
    animals = ["the cat sleeps on the warm mat", "a dog barks at the mail carrier", "the horse runs in the field"]
    tools = ["the hammer drives the nail", "a saw cuts the wooden board", "the drill makes a round hole"]
    rows = [{"text": f"{t} {i}", "label": "animal"} for i, t in enumerate(animals * 20)]
    rows += [{"text": f"{t} {i}", "label": "tool"} for i, t in enumerate(tools * 20)]
    path.write_bytes("".join(json.dumps(r) + "\n" for r in rows).encode() + b"\xff broken line\n")
    return path


@pytest.mark.slow
def test_pretrain_probe_export_roundtrip(tmp_path, corpus, recipe="mlm"):
    from transformers import AutoModel, AutoTokenizer

    run, out = tmp_path / "run", tmp_path / "export"
    proc = run_selfsup(
        "pretrain", f"text/{recipe}", "--data", str(corpus), "--max-steps", "3", "--out", str(run),
        "--set", *TINY, "probe.train_size=null", timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "skipped 1 lines that are not UTF-8" in proc.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"pretrained", "random_init", "raw_input"}
    assert 0 <= metrics["raw_input"]["linear_top1"] <= 1
    assert run_selfsup("export", str(run), str(out), check=True).returncode == 0

    spec = json.loads((out / "config.json").read_text())
    tok = tokenizer_from_json(spec["input"]["tokenizer"])
    texts = ["the cat runs", "a saw"]
    ids = [e.ids for e in tok.encode_batch(texts)]
    batch = pad_batch(ids)
    ours = load_backbone(out)(batch)  # (2, 16)

    hf_dir = out / "transformers"
    model = AutoModel.from_pretrained(hf_dir).eval()
    hf_tok = AutoTokenizer.from_pretrained(hf_dir)
    enc = hf_tok(texts, padding=True, return_tensors="pt")
    assert enc["input_ids"].tolist() == batch["input_ids"].tolist()
    with torch.no_grad():
        h = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    torch.testing.assert_close((h * mask).sum(1) / mask.sum(1), ours, atol=1e-5, rtol=1e-5)


def test_bad_user_data_is_one_clear_line(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"\xff\xfe\n\n")
    proc = run_selfsup("pretrain", "text/mlm", "--data", str(empty), "--max-steps", "1", "--out", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f"selfsup: error: no text in {empty}: the corpus is empty (1 lines that are not UTF-8); "
        "pass a file with one text per line"
    )


def test_t5_export_loads_in_transformers(tmp_path, tiny_info):
    from transformers import AutoModel

    from ssl_text.export import save_pretrained
    from ssl_text.methods.t5_span import T5SpanConfig, T5SpanCorruption
    from ssl_text.models.backbones import TextBackboneConfig

    torch.manual_seed(0)
    cfg = T5SpanConfig(backbone=TextBackboneConfig("t5", 16, 1, 2, 32))
    method = T5SpanCorruption(cfg, tiny_info).eval()
    spec = method.backbone_spec()
    hf_dir = save_pretrained(method.backbone, {"input": spec.input}, tmp_path)
    model = AutoModel.from_pretrained(hf_dir).eval()
    batch = pad_batch([[2, 10, 11, 12, 3], [2, 13, 3]])
    with torch.no_grad():
        h = model.get_encoder()(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    torch.testing.assert_close((h * mask).sum(1) / mask.sum(1), method.embed(batch), atol=1e-5, rtol=1e-5)

"""``selfsup export`` for text: beside the safetensors export, a ``transformers/`` folder that
``AutoModel.from_pretrained`` and ``AutoTokenizer.from_pretrained`` load offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ssl_text.models.backbones import TextEncoder
from ssl_text.tokenization import to_transformers, tokenizer_from_json

HF_DIR = "transformers"


def save_pretrained(backbone: TextEncoder, config: dict[str, Any], out_dir: Path) -> Path:
    """Write ``out_dir/transformers``: the model (``model.safetensors`` + ``config.json``) and its tokenizer.

    Load it with ``AutoModel.from_pretrained(out_dir / "transformers")``; the sentence embedding is the mean
    of ``last_hidden_state`` over the attention mask (of the encoder, for T5).
    """
    hf_dir = Path(out_dir) / HF_DIR
    backbone.model.save_pretrained(hf_dir)
    tok = tokenizer_from_json(config["input"]["tokenizer"])
    to_transformers(tok, config["input"]["max_length"]).save_pretrained(hf_dir)
    return hf_dir

"""tokenizers trains locally and transformers builds models from configs, with no download."""

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import BertConfig, BertModel

import ssl_text


def test_local_tokenizer_and_model_from_config():
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    corpus = ["self supervised learning", "learning from unlabeled text", "supervised or not"] * 10
    tok.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=60, special_tokens=["[UNK]", "[PAD]"]))
    ids = tok.encode("unlabeled learning").ids
    assert ids and tok.token_to_id("[UNK]") not in ids
    model = BertModel(
        BertConfig(
            vocab_size=tok.get_vocab_size(),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
        )
    )
    out = model(torch.tensor([ids])).last_hidden_state
    assert out.shape == (1, len(ids), 16)
    assert ssl_text.__version__

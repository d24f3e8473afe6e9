"""``selfsup export`` for audio: beside the safetensors export, an ``hf/`` folder that Hugging Face's
``Wav2Vec2Model.from_pretrained`` (or ``HubertModel.from_pretrained``, for HuBERT-trained backbones) loads offline.

Our :class:`~ssl_audio.models.wav2vec2.Wav2Vec2Backbone` has Hugging Face's parameter layout key for key, so the
folder is its state dict under a ``config.json`` that describes the same architecture, plus a
``preprocessor_config.json`` (``Wav2Vec2FeatureExtractor`` with ``do_normalize=False``: our backbones take raw
waveforms in [-1, 1], not per-utterance standardised ones). ``last_hidden_state`` is our ``frames(wave)``; the
utterance embedding our probes use is its mean over time. ``transformers`` is imported only here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ssl_audio.models.wav2vec2 import Wav2Vec2Backbone, Wav2Vec2BackboneConfig

HF_DIR = "hf"


def hf_config_kwargs(config: Wav2Vec2BackboneConfig | dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``transformers.Wav2Vec2Config`` / ``HubertConfig`` for our backbone config
    (layerdrop 0 as ours; Hugging Face's other defaults, e.g. its SpecAugment for fine-tuning, unchanged)."""
    c = config if isinstance(config, Wav2Vec2BackboneConfig) else Wav2Vec2BackboneConfig(**config)
    return {
        "hidden_size": c.hidden_size,
        "num_hidden_layers": c.num_hidden_layers,
        "num_attention_heads": c.num_attention_heads,
        "intermediate_size": c.intermediate_size,
        "hidden_act": "gelu",
        "hidden_dropout": c.hidden_dropout,
        "activation_dropout": c.activation_dropout,
        "attention_dropout": c.attention_dropout,
        "feat_proj_dropout": c.feat_proj_dropout,
        "layerdrop": 0.0,
        "layer_norm_eps": c.layer_norm_eps,
        "feat_extract_norm": "group",
        "feat_extract_activation": "gelu",
        "conv_dim": list(c.conv_dim),
        "conv_kernel": list(c.conv_kernel),
        "conv_stride": list(c.conv_stride),
        "conv_bias": c.conv_bias,
        "num_conv_pos_embeddings": c.num_conv_pos_embeddings,
        "num_conv_pos_embedding_groups": c.num_conv_pos_embedding_groups,
        "do_stable_layer_norm": False,
    }


def hf_model(backbone: Wav2Vec2Backbone) -> nn.Module:
    """The ``transformers`` model (``Wav2Vec2Model`` or ``HubertModel``, by ``config.model_type``) holding
    ``backbone``'s weights, in eval mode."""
    import transformers

    c = backbone.config
    if c.model_type == "hubert":
        model = transformers.HubertModel(transformers.HubertConfig(feat_proj_layer_norm=True, **hf_config_kwargs(c)))
    else:
        model = transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**hf_config_kwargs(c)))
    model.load_state_dict(backbone.state_dict(), strict=True)
    return model.eval()


def save_pretrained(backbone: nn.Module, config: dict[str, Any], out_dir: Path) -> Path | None:
    """Write ``out_dir/hf`` (``config.json``, ``model.safetensors``, ``preprocessor_config.json``) for a
    wav2vec 2.0 / HuBERT backbone; other backbones are left alone (returns None, writes nothing).

    Load it with ``transformers.Wav2Vec2Model.from_pretrained(out_dir / "hf")`` (``HubertModel`` when the
    backbone's ``model_type`` is ``"hubert"``) and ``Wav2Vec2FeatureExtractor.from_pretrained`` on the same folder.

    Args:
        backbone: the exported backbone.
        config: the export's ``config.json`` content (its ``input.sample_rate`` goes to the feature extractor).
        out_dir: the export folder.
    """
    if not isinstance(backbone, Wav2Vec2Backbone):
        return None
    import transformers

    hf_dir = Path(out_dir) / HF_DIR
    model = hf_model(backbone)
    model.save_pretrained(hf_dir, safe_serialization=True)
    sample_rate = int(config.get("input", {}).get("sample_rate", backbone.config.sample_rate))
    transformers.Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=sample_rate,
        padding_value=0.0,
        do_normalize=False,
        return_attention_mask=False,
    ).save_pretrained(hf_dir)
    return hf_dir


def pretraining_twin(method: nn.Module) -> nn.Module:
    """``transformers.Wav2Vec2ForPreTraining`` of an ``audio/wav2vec2`` method's configuration, holding its weights
    (backbone, quantizer and projections): the peer of the tests' loss check and of
    ``benchmarks/audio_wav2vec2_speed.py``. Returned in training mode, quantizer dropout off.

    Args:
        method: a :class:`ssl_audio.methods.wav2vec2.Wav2Vec2`.
    """
    import transformers

    c = method.config
    cfg = transformers.Wav2Vec2Config(
        **hf_config_kwargs(c.backbone),
        num_codevector_groups=c.num_codevector_groups,
        num_codevectors_per_group=c.num_codevectors_per_group,
        codevector_dim=c.codevector_dim,
        proj_codevector_dim=c.proj_codevector_dim,
        num_negatives=c.num_negatives,
        contrastive_logits_temperature=c.contrastive_temperature,
        diversity_loss_weight=c.diversity_weight,
        feat_quantizer_dropout=0.0,
    )
    hf = transformers.Wav2Vec2ForPreTraining(cfg)
    prefix = "backbone."
    state = {("wav2vec2." + k[len(prefix) :]) if k.startswith(prefix) else k: v for k, v in method.state_dict().items()}
    hf.load_state_dict(state, strict=True)
    return hf.train()

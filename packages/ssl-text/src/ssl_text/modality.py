"""The text modality as the core discovers it (entry point ``ssl_core.modalities: text``).

Every default run (pretraining and probes) is sized for at most 5 minutes on 2 CPU cores: most epoch budgets
ask for more steps than 3 minutes hold on 2 idle cores, and ``train.max_minutes`` fits the schedules into that
time (measured after the first steps), so no run trains for longer than its ``max_minutes`` on any machine;
small corpora (``span_origin``'s Python reference) end their epochs well before it.
"""

from ssl_core.eval.config import ProbeConfig
from ssl_core.modality import Modality, Recipe
from ssl_core.train.config import TrainConfig
from ssl_text.data.sources import DATASETS
from ssl_text.data.text import TextDataConfig, load_data
from ssl_text.export import save_pretrained
from ssl_text.methods.bioptimus import BIOptimus, BIOptimusConfig
from ssl_text.methods.causal_lm import CausalLM, CausalLMConfig
from ssl_text.methods.code_switch import CodeSwitchConfig, CodeSwitchRestore
from ssl_text.methods.crts import CRTS, CRTSConfig
from ssl_text.methods.electra import Electra, ElectraConfig
from ssl_text.methods.mlm import MLM, MLMConfig
from ssl_text.methods.rts import RTS, RTSConfig
from ssl_text.methods.slm import SLM, SLMConfig
from ssl_text.methods.span_origin import SpanOrigin, SpanOriginConfig
from ssl_text.methods.t5_span import T5SpanConfig, T5SpanCorruption
from ssl_text.methods.urlbert import URLBERT, URLBERTConfig
from ssl_text.models.backbones import build_text_encoder

# probes fit on a class-stratified 2,000-text subset of the training texts and score the held-out test texts
PROBE = ProbeConfig(train_size=2000, batch_size=256)


def _train(minutes: float, batch_size: int = 32, epochs: float = 8) -> TrainConfig:
    return TrainConfig(
        epochs=epochs,
        max_minutes=minutes,
        batch_size=batch_size,
        lr=1e-3,
        warmup_epochs=0.05,
        weight_decay=0.01,
        clip_grad=1.0,
    )


DEVLIN = "Devlin et al., 2019, BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding"
DI_LIELLO = "Di Liello et al., 2022, Effective Pre-Training Objectives for Transformer-based Autoencoders (seed 41)"

modality = Modality(
    name="text",
    summary="text, code and protein sequences (fortunes by default; text/JSONL/FASTA files with --data)",
    data_config=TextDataConfig(),
    load_data=load_data,
    recipes=Modality.recipe_map(
        Recipe(
            name="mlm",
            method=MLM,
            config=MLMConfig(),
            summary="masked LM: BERT, dynamic 80/10/10 masking of 15% of the tokens",
            paper=DEVLIN,
            train=_train(3.0),
            probe=PROBE,
        ),
        Recipe(
            name="electra",
            method=Electra,
            config=ElectraConfig(),
            summary="ELECTRA: a small MLM generator fills masked tokens, the discriminator detects replacements",
            paper="Clark et al., 2020, ELECTRA: Pre-training Text Encoders as Discriminators Rather Than Generators",
            train=_train(3.0),
            probe=PROBE,
        ),
        Recipe(
            name="rts",
            method=RTS,
            config=RTSConfig(),
            summary="random token substitution: detect which 15% of the tokens were swapped for random ones",
            paper=DI_LIELLO,
            train=_train(3.0),
            probe=PROBE,
        ),
        Recipe(
            name="slm",
            method=SLM,
            config=SLMConfig(),
            summary="swapped LM: predict the original of the 15% of tokens swapped for random ones",
            paper=DI_LIELLO,
            train=_train(3.0),
            probe=PROBE,
        ),
        Recipe(
            name="crts",
            method=CRTS,
            config=CRTSConfig(),
            summary="cluster-based RTS: detect the 15% of tokens swapped for tokens of the same co-occurrence "
            "cluster (seed 41)",
            paper=DI_LIELLO,
            train=_train(3.0),
            probe=PROBE,
        ),
        Recipe(
            name="span_origin",
            method=SpanOrigin,
            config=SpanOriginConfig(),
            summary="span origin: do two spans of the Python reference come from the same document? (seed 41)",
            paper="Di Liello et al., 2022, Pre-training Transformer Models with Sentence-Level Objectives for Answer "
            "Sentence Selection",
            train=_train(3.0, epochs=4),
            data=TextDataConfig(name="python_docs", probe="fortunes"),
            probe=PROBE,
        ),
        Recipe(
            name="t5_code",
            method=T5SpanCorruption,
            config=T5SpanConfig(),
            summary="T5 span corruption on standard-library functions; docstring -> code MRR@10 (seed 42)",
            paper="Raffel et al., 2020 (T5); Mastropaolo et al., 2021, Studying the Usage of Text-To-Text Transfer "
            "Transformer to Support Code-Related Tasks",
            train=_train(3.0, batch_size=16),
            data=TextDataConfig(name="stdlib_code", vocab_size=8192, max_length=96),
            probe=PROBE,
        ),
        Recipe(
            name="causal_lm",
            method=CausalLM,
            config=CausalLMConfig(),
            summary="GPT-2 causal LM pretraining, then a fine-tuning sample-efficiency curve (seed 40)",
            paper="Xu et al., 2019, Pre-training a Neural Language Model Improves the Sample Efficiency of an "
            "Emergency Room Classification Model",
            train=_train(2.0),
            data=TextDataConfig(finetune_fractions=[0.01, 0.1, 1.0]),
            probe=PROBE,
        ),
        Recipe(
            name="code_switch",
            method=CodeSwitchRestore,
            config=CodeSwitchConfig(),
            summary="code-switching restore: a T5 restores English texts from English-French code-switched "
            "ones (seed 43)",
            paper="Zan et al., 2022, Bridging Cross-Lingual Gaps During Leveraging the Multilingual "
            "Sequence-to-Sequence Pretraining for Text Generation and Understanding",
            train=_train(3.0),
            data=TextDataConfig(lexicon="eng-fra"),
            probe=PROBE,
        ),
        Recipe(
            name="urlbert",
            method=URLBERT,
            config=URLBERTConfig(),
            summary="URLBERT: masked LM, contrastive URL variants and virtual adversarial training on URLs; "
            "site probes (seed 44)",
            paper="Li et al., 2024, URLBERT: A Contrastive and Adversarial Pre-trained Model for URL Classification",
            train=_train(3.0),
            data=TextDataConfig(name="urls"),
            probe=PROBE,
        ),
        Recipe(
            name="bioptimus",
            method=BIOptimus,
            config=BIOptimusConfig(),
            summary="BIOptimus: masked LM with a curriculum mask ratio; new word tokens initialised by contextual "
            "distillation half-way (seed 45)",
            paper="Pavlova & Makhlouf, 2023, BIOptimus: Pre-training an Optimal Biomedical Language Model with "
            "Curriculum Learning for Named Entity Recognition",
            train=_train(3.0),
            probe=PROBE,
        ),
        Recipe(
            name="protein_mlm",
            method=MLM,
            config=MLMConfig(),
            summary="masked LM on the pyhmmer proteome; Pfam family probes (TAPE, seed 46)",
            paper="Rao et al., 2019, Evaluating Protein Transfer Learning with TAPE",
            train=_train(3.0, epochs=20),
            data=TextDataConfig(name="proteome", probe="pfam_seeds", max_length=128, test_fraction=0.3),
            probe=ProbeConfig(batch_size=128),
        ),
    ),
    backbones={"transformers": build_text_encoder},
    datasets=DATASETS,
    export_extra=save_pretrained,
)

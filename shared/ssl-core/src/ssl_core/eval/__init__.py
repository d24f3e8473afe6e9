"""Probes on frozen embeddings (kNN, linear, cross-validated, few-shot, prototypical), fine-tuning probes, and
the probe table of a run."""

from ssl_core.eval.config import ProbeConfig
from ssl_core.eval.crossval import CrossValResult, cross_val_accuracy
from ssl_core.eval.embed import embed_inputs, format_table, probe_table, stratified_subset
from ssl_core.eval.fewshot import FewShotResult, few_shot_accuracy
from ssl_core.eval.finetune import finetune_accuracy, finetune_curve_probes
from ssl_core.eval.knn import knn_accuracy, knn_predict
from ssl_core.eval.linear import LinearProbeResult, linear_probe
from ssl_core.eval.prototypical import prototypical_probe

__all__ = [
    "CrossValResult",
    "FewShotResult",
    "LinearProbeResult",
    "ProbeConfig",
    "cross_val_accuracy",
    "embed_inputs",
    "few_shot_accuracy",
    "finetune_accuracy",
    "finetune_curve_probes",
    "format_table",
    "knn_accuracy",
    "knn_predict",
    "linear_probe",
    "probe_table",
    "prototypical_probe",
    "stratified_subset",
]

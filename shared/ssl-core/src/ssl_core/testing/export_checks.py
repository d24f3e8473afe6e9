"""The check every modality's end-to-end tests make of an export: it embeds as the run's method does."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.utils.data import default_collate

from ssl_core.export import load_backbone
from ssl_core.run import build_method, open_run
from ssl_core.train import latest_checkpoint, load_weights


def assert_export_matches_run(run_dir: str | os.PathLike, export_dir: str | os.PathLike, n: int = 8) -> None:
    """Assert that the backbone exported to ``export_dir`` gives the embeddings of the run's method at its
    latest checkpoint (:meth:`~ssl_core.method.Method.embed`, in evaluation mode) on the first ``n`` probe
    test inputs of the run's data, batched by the data's ``collate_fn`` (torch's default without one).

    Args:
        run_dir: a run folder made by ``selfsup pretrain``.
        export_dir: a folder written from it by ``selfsup export`` (:func:`ssl_core.export_backbone`).
        n: how many probe inputs to embed.

    Shapes:
        - both embeddings: ``(n, embed_dim)``
    """
    backbone = load_backbone(export_dir)
    modality, recipe, cfg = open_run(run_dir)
    bundle = modality.load_data(cfg.data)
    method = build_method(recipe, cfg, bundle)
    load_weights(method, latest_checkpoint(Path(run_dir) / "checkpoints"))
    method.eval()
    x = (bundle.collate_fn or default_collate)([bundle.probe_test.inputs[i] for i in range(n)])
    torch.testing.assert_close(backbone(x), method.embed(x))

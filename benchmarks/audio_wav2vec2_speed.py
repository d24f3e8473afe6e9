"""wav2vec 2.0 training throughput: ``audio/wav2vec2``'s method vs Hugging Face's ``Wav2Vec2ForPreTraining``.

Both models are the recipe's default configuration (conv encoder 7 x 128, transformer 192-d x 4, G = 2 codebooks
of V = 32, K = 100 distractors, dropouts as configured) with the same weights; one step is forward, backward and
AdamW on a batch of 1 s clips, with the SAME span mask and distractor indices handed to both (Hugging Face's
``mask_time_indices`` / ``sampled_negative_indices``; ours as ``mask`` / ``negatives``). A third row is ours
drawing its own mask and distractors inside ``forward`` (what the trainer runs), for the cost of the sampling.
Both compute the same loss up to the reduction (ours: mean over masked frames, theirs: sum; see
tests/test_wav2vec2.py), so ours is scaled by the number of masked frames to step on the same objective.

Steps alternate between the implementations round by round, so load from other jobs on the shared machine hits
all of them alike; the ratio is the median of the per-round ratios (Hugging Face time / ours: > 1 means ours is
faster).

    uv run python benchmarks/audio_wav2vec2_speed.py [--batch 16] [--rounds 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads libgomp (see _harness.py)

import statistics  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import machine_line, markdown_table, timed_step, write  # noqa: E402

from ssl_audio.export import pretraining_twin  # noqa: E402
from ssl_audio.info import AudioInfo  # noqa: E402
from ssl_audio.methods.wav2vec2 import Wav2Vec2, Wav2Vec2Config  # noqa: E402
from ssl_core.testing import begin_step  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices, _sample_negative_indices

    torch.manual_seed(0)
    info = AudioInfo()
    cfg = Wav2Vec2Config()
    ours = Wav2Vec2(cfg, info).train()
    hf = pretraining_twin(ours)
    hf.set_gumbel_temperature(cfg.gumbel_temperature)
    begin_step(ours, gumbel_temperature=cfg.gumbel_temperature)
    wave = torch.randn(args.batch, info.num_samples) * 0.1
    frames = cfg.backbone.num_frames(info.num_samples)
    np.random.seed(0)
    mask_np = _compute_mask_indices((args.batch, frames), cfg.mask_prob, cfg.mask_length, min_masks=cfg.min_masks)
    negs_np = _sample_negative_indices((args.batch, frames), cfg.num_negatives, mask_np)
    mask = torch.as_tensor(mask_np)
    hf_negs = torch.as_tensor(negs_np, dtype=torch.long)
    negs = hf_negs - (torch.arange(args.batch) * frames)[:, None, None]
    n = mask.sum()

    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4)
    opt_hf = torch.optim.AdamW(hf.parameters(), lr=1e-4)
    variants = {
        "selfsup Wav2Vec2 (given mask + distractors)": (opt_ours, lambda: ours(wave, mask, negs).loss * n),
        "transformers Wav2Vec2ForPreTraining (same mask + distractors)": (
            opt_hf,
            lambda: hf(wave, mask_time_indices=mask, sampled_negative_indices=hf_negs).loss,
        ),
        "selfsup Wav2Vec2 (draws its own mask + distractors)": (opt_ours, lambda: ours(wave).loss),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(args.warmup + args.rounds):
        for name, (optimizer, loss_fn) in variants.items():
            t = timed_step(optimizer, loss_fn)
            if r >= args.warmup:
                times[name].append(t)
    names = list(variants)
    per_round = [h / o for o, h in zip(times[names[0]], times[names[1]], strict=True)]
    ratio = statistics.median(per_round)
    rows = []
    for name in names:
        ms = statistics.median(times[name]) * 1e3
        rows.append([name, f"{ms:,.0f}", f"{args.batch / (ms / 1e3):,.1f}"])
    md = "\n\n".join(
        [
            f"wav2vec 2.0 training step (forward, backward, AdamW), batch {args.batch} of 1 s clips at 16 kHz "
            f"({frames} frames, {int(n)} masked), the recipe's default model "
            f"({sum(p.numel() for p in ours.parameters()) / 1e6:.2f} M parameters); median of {args.rounds} rounds "
            f"after {args.warmup} warm-up rounds. {machine_line()}.",
            markdown_table(["implementation", "step ms", "clips/s"], rows),
            f"Hugging Face / ours step time (same mask and distractors): median of per-round ratios {ratio:.2f} "
            f"(rounds: {', '.join(f'{x:.2f}' for x in per_round)}); ours at least as fast: "
            f"{'PASS' if ratio >= 1.0 else 'FAIL'}",
        ]
    )
    print(md)
    write("audio_wav2vec2_speed", md + "\n", {"times_s": times, "per_round_ratio": per_round, "ratio": ratio})


if __name__ == "__main__":
    main()

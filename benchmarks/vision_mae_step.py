"""MAE's training step with the encoder on the visible 25% of the patches vs the same model fed all tokens.

MAE (He et al., 2022) encodes only the visible patches; that is where its speed comes from. This measures
one optimizer step (forward, backward, AdamW) of ``vision/mae``'s model with 4-pixel patches (ViT-tiny,
28x28 images: 49 patches, where the saving shows most; the recipe's default is 7-pixel patches, 16 of them;
decoder 128-d x 2 blocks) at mask ratio 0.75 -- the encoder gets 1 + 12 tokens --
and the same model with every token given to the encoder (``ids_keep`` = all 49 patches, the loss over all
patches). The decoder runs on all 50 positions in both. Beside them, lightly's MAE (its example on a
torchvision ViT of the same shape, see vision_lightly.py) at mask ratio 0.75.

Steps alternate between the variants round by round, so load from other jobs on the shared machine hits all
of them alike; the ratio is the median of the per-round ratios. Acceptance: masked / full <= 0.45.

    uv run python benchmarks/vision_mae_step.py [--batch 64] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads libgomp (see _harness.py)

import statistics  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import machine_line, markdown_table, timed_step, write  # noqa: E402

from ssl_core.testing import pretext_batch  # noqa: E402
from ssl_core.train.config import TrainConfig  # noqa: E402
from ssl_core.train.optim import build_optimizer  # noqa: E402
from ssl_vision.data.images import ImageInfo  # noqa: E402
from ssl_vision.methods.mae import MAE, MAEConfig  # noqa: E402
from ssl_vision.models.vit import ViTConfig  # noqa: E402

INFO = ImageInfo(channels=1, image_size=28, mean=[0.286], std=[0.353])


def batches(model: MAE, batch_size: int, seed: int = 0) -> tuple[dict, dict]:
    """The same images as a masked batch (the pretext's random 75% mask) and as an all-tokens batch."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch_size, 1, 28, 28), generator=g, dtype=torch.uint8)
    torch.manual_seed(seed)
    masked = pretext_batch(model, images)
    n = model.backbone.num_patches
    every = torch.arange(n).expand(batch_size, n)
    full = {
        "image": masked["image"],
        "ids_keep": every,
        "ids_restore": every,
        "mask": torch.ones(batch_size, n, dtype=torch.bool),
    }
    return masked, full


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--no-lightly", action="store_true", help="skip lightly's MAE")
    args = p.parse_args(argv)

    torch.manual_seed(0)
    cfg = MAEConfig(backbone=ViTConfig(patch_size=4))
    ours = MAE(cfg, INFO)
    opt = build_optimizer(ours, TrainConfig(lr=1e-4))
    masked, full = batches(ours, args.batch)
    variants = {
        "selfsup MAE, encoder on the 12 visible patches (mask 0.75)": (ours, opt, lambda: ours(masked).loss),
        "selfsup MAE, encoder on all 49 patches": (ours, opt, lambda: ours(full).loss),
    }
    if not args.no_lightly:
        from vision_lightly import LightlyMAE

        peer = LightlyMAE(cfg, INFO, total_steps=1, train=TrainConfig())
        peer_opt = torch.optim.AdamW(peer.parameters(), lr=1e-4)
        views = [masked["image"]]
        variants["lightly MAE (torchvision ViT, same shape), mask 0.75"] = (
            peer,
            peer_opt,
            lambda: peer.training_loss(views, 0),
        )
    times: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(args.warmup + args.rounds):
        for name, (_model, optimizer, loss_fn) in variants.items():
            t = timed_step(optimizer, loss_fn)
            if r >= args.warmup:
                times[name].append(t)
    names = list(variants)
    per_round = [m / f for m, f in zip(times[names[0]], times[names[1]], strict=True)]
    ratio = statistics.median(per_round)
    rows = []
    for name in names:
        ms = statistics.median(times[name]) * 1e3
        rows.append(
            [
                name,
                f"{ms:,.0f}",
                f"{args.batch / (ms / 1e3):,.0f}",
                f"{ms / (statistics.median(times[names[1]]) * 1e3):.2f}",
            ]
        )
    md = "\n\n".join(
        [
            f"MAE training step (forward, backward, AdamW), batch {args.batch} of 28x28 images, ViT-tiny/4 encoder, "
            f"decoder {cfg.decoder_dim}-d x {cfg.decoder_depth}; median of {args.rounds} rounds after {args.warmup} "
            f"warm-up rounds. {machine_line()}.",
            markdown_table(["variant", "step ms", "images/s", "time / all-tokens time"], rows),
            f"masked / all-tokens step time: median of per-round ratios {ratio:.2f} "
            f"(rounds: {', '.join(f'{x:.2f}' for x in per_round)}); acceptance <= 0.45: "
            f"{'PASS' if ratio <= 0.45 else 'FAIL'}",
        ]
    )
    print(md)
    write("vision_mae_step", md + "\n", {"times_s": times, "per_round_ratio": per_round, "ratio": ratio})


if __name__ == "__main__":
    main()

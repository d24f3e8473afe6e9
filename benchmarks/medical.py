"""3-D contrastive pretraining step: ``medical/vit_autoenc`` vs MONAI's vit_unetr_ssl tutorial (CPU, one process).

MONAI's tutorial ``self_supervised_pretraining/vit_unetr_ssl/ssl_train.ipynb`` trains ``ViTAutoEnc`` on two
corrupted views of each patch: ``outputs_v1, _ = model(inputs)``, ``outputs_v2, _ = model(inputs_2)``,
``r_loss = L1Loss()(outputs_v1, gt_input)``, ``cl_loss = ContrastiveLoss(temperature=0.05)(flat_v1, flat_v2)``
on the outputs flattened to ``(B, D*H*W)``, ``total = r_loss + cl_loss * r_loss``, Adam. Rows, on the same
network initialisation and the same views (made once by our pretext):

- ``monai_tutorial``: those notebook lines (two forward passes, MONAI's ``ContrastiveLoss``, which broadcasts a
  ``(2B, 2B, D*H*W)`` cosine-similarity tensor);
- ``ours``: ``ssl_medical.methods.vit_autoenc.ViTAutoEncSSL.forward`` (both views in one pass,
  ``ssl_core.losses.nt_xent``: normalise, one ``(2B, 2B)`` product); same loss value;
- ``two_pass_nt_xent``: the notebook's two passes with our loss, to separate the two changes.

The step is forward, backward and Adam (lr 1e-4, the tutorial's). ``views ms`` is the time to make the views of
one batch: the tutorial's dictionary pipeline (``CopyItemsd`` + ``OneOf(RandCoarseDropoutd x 2)`` +
``RandCoarseShuffled`` per view) for ``monai_tutorial``, our ``CorruptedViews`` (the same MONAI array transforms)
for the others; both run in data-loader workers in training. Each (row, size) runs in a fresh process
(``_harness.py``: warm-up step at batch 1, which also allocates Adam's state, then the peak extra RSS of the
first step at the target batch and the median of the repeated steps).

Sizes: ``cpu``: our CPU default (ViTAutoEnc 192/768, 4 layers, 4 heads, patch 16) on 32^3, batch 8;
``vitb64``: the tutorial's network (768/3072, 12 layers, 12 heads, patch 16, 89 M parameters) on 64^3, batch 2;
``vitb96``: the tutorial's network on its 96^3 patches, batch 8 (``batch_size=4`` x ``num_samples=2``).

    uv run python benchmarks/medical.py [--quick]      # --quick: cpu and vitb64 only
"""

from __future__ import annotations

import argparse
import os
import sys

import _harness as h

SIZES = {
    # name: (patch side, batch, network kwargs of ViTAutoEncSSLConfig, repeats)
    "cpu": (32, 8, {}, 5),
    "vitb64": (64, 2, {"hidden_size": 768, "mlp_dim": 3072, "num_layers": 12, "num_heads": 12}, 3),
    "vitb96": (96, 8, {"hidden_size": 768, "mlp_dim": 3072, "num_layers": 12, "num_heads": 12}, 2),
}
ROWS = ["monai_tutorial", "ours", "two_pass_nt_xent"]


def patches(n: int, size: int):
    """Smooth random patches in [0, 1] (trilinear up-sampling of a coarse grid), seeded."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, size // 4, size // 4, size // 4, generator=g)
    return F.interpolate(x, size=(size,) * 3, mode="trilinear", align_corners=False).clamp(0, 1)


def tutorial_views(size: int):
    """The notebook's view transforms (its sizes are for 96^3; scaled like ours for other sizes)."""
    from monai.transforms import Compose, CopyItemsd, OneOf, RandCoarseDropoutd, RandCoarseShuffled

    from ssl_medical.methods.vit_autoenc import scaled

    def s(v):
        return scaled(v, (size,) * 3, 96)

    def view(key):
        return [
            OneOf(
                transforms=[
                    RandCoarseDropoutd(
                        keys=[key], prob=1.0, holes=6, spatial_size=s(5), dropout_holes=True, max_spatial_size=s(32)
                    ),
                    RandCoarseDropoutd(
                        keys=[key], prob=1.0, holes=6, spatial_size=s(20), dropout_holes=False, max_spatial_size=s(64)
                    ),
                ]
            ),
            RandCoarseShuffled(keys=[key], prob=0.8, holes=10, spatial_size=s(8)),
        ]

    return Compose(
        [CopyItemsd(keys=["image"], times=2, names=["gt_image", "image_2"], allow_missing_keys=False)]
        + view("image")
        + view("image_2")
    ).set_random_state(seed=123)


def run(spec: dict) -> dict:
    import torch
    from monai.losses import ContrastiveLoss

    from ssl_core.losses import nt_xent
    from ssl_core.testing import pretext_batch
    from ssl_medical.info import VolumeInfo
    from ssl_medical.methods.vit_autoenc import ViTAutoEncSSL, ViTAutoEncSSLConfig

    size, batch_size, net_kwargs, repeats = SIZES[spec["size"]]
    row = spec["row"]
    torch.manual_seed(0)
    method = ViTAutoEncSSL(ViTAutoEncSSLConfig(**net_kwargs), VolumeInfo(patch_size=(size,) * 3))
    net = method.backbone.net
    x = patches(batch_size, size)

    # the views of one batch, timed (the result of our pretext is the batch every row trains on)
    torch.manual_seed(1)
    if row == "monai_tutorial":
        pipeline = tutorial_views(size)
        views = h.measure(lambda: [pipeline({"image": p.clone()}) for p in x], 3)
    else:
        views = h.measure(lambda: pretext_batch(method, x), 3)
    torch.manual_seed(1)
    batch = pretext_batch(method, x)

    opt = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=1e-4)
    monai_cl = ContrastiveLoss(temperature=0.05)

    def loss_of(b):
        if row == "ours":
            return method(b).loss
        o1, _ = net(b["view1"])
        o2, _ = net(b["view2"])
        r = torch.nn.functional.l1_loss(o1, b["target"])
        f1, f2 = o1.flatten(start_dim=1, end_dim=4), o2.flatten(start_dim=1, end_dim=4)
        cl = monai_cl(f1, f2) if row == "monai_tutorial" else nt_xent(f1, f2, 0.05)
        return r + cl * r

    def step(b):
        loss = loss_of(b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    # warm-up at batch 1 (allocates Adam's state); the same loss in every row, so the same update
    step({k: v[:1] for k, v in batch.items()})
    result = h.measure(lambda: step(batch), repeats)
    result["views_ms"] = views["ms"]
    result["params_m"] = sum(p.numel() for p in method.parameters()) / 1e6
    result["agreement"] = f"first-step loss {result.pop('value'):.6f}"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the cpu and vitb64 sizes only")
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), help="sizes to run (default: all)")
    parser.add_argument("--rows", nargs="+", default=ROWS, choices=ROWS)
    parser.add_argument("--max-gib", type=float, default=12.0, help="memory guard per configuration")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per configuration")
    parser.add_argument("--name", default="medical", help="results/<name>.md and .json")
    args = parser.parse_args()
    sizes = args.sizes or (["cpu", "vitb64"] if args.quick else list(SIZES))
    machine = h.machine_line()
    rows, results = [], {}
    for size in sizes:
        side, batch, net_kwargs, _ = SIZES[size]
        for row in args.rows:
            r = h.run_child(__file__, {"row": row, "size": size}, args.timeout, args.max_gib)
            results[f"{size}/{row}"] = r
            print(f"{size} {row}: {r}", file=sys.stderr, flush=True)
            label = f"{size}: {side}^3 x {batch}" + (f", {r['params_m']:.1f} M params" if "params_m" in r else "")
            views = f"{r['views_ms']:,.0f}" if r.get("status") == "ok" else "–"
            rows.append([label, row, h.fmt_ms(r), h.fmt_mib(r), views, r.get("agreement", "–")])
    ratio_rows = []
    for size in sizes:
        ours, theirs = results.get(f"{size}/ours"), results.get(f"{size}/monai_tutorial")
        ratio_rows.append([size, h.ratio(ours, theirs, "ms"), h.ratio(ours, theirs, "peak_mib")])
    out = [
        "# 3-D contrastive pretraining step (ViTAutoEnc): ours vs MONAI's vit_unetr_ssl tutorial, CPU float32",
        "",
        f"`{' '.join(['uv run python benchmarks/medical.py', *sys.argv[1:]])}` on {machine}; "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'PASSIVE')}. Step: forward, backward, Adam; same "
        "initialisation and views in every row; each cell a fresh process.",
        "",
        h.markdown_table(
            ["size", "row", "step median ms (CPU ms)", "step peak extra MiB", "views ms / batch", "agreement"], rows
        ),
        "",
        "**ours / monai_tutorial (same run; < 1: ours is faster / smaller)**",
        "",
        h.markdown_table(["size", "time", "peak memory"], ratio_rows),
    ]
    text = "\n".join(out) + "\n"
    path = h.write(args.name, text, {"machine": machine, "argv": sys.argv[1:], "results": results})
    print(text)
    print(f"written to {path}", file=sys.stderr)


if __name__ == "__main__":
    if not h.child_entry(run):
        main()

"""The ``selfsup`` command: list, pretrain, eval, export.

Errors of use (an unknown method, a malformed ``--set``, missing data) end with one line on stderr,
``selfsup: error: ...``, and exit status 2; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ssl_core.errors import SelfsupError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of argparse's usage + error
        self.exit(2, f"selfsup: error: {message} (see `{self.prog} --help`)\n")


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="selfsup", description="Self-supervised pretraining for every modality from one core.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("list", help="methods and data sets of the installed modality packages")

    pt = sub.add_parser(
        "pretrain",
        help="pretrain a backbone, then probe it",
        description="Pretrain <modality>/<method> (see `selfsup list`), then score it with kNN and "
        "linear probes beside a random-init backbone and the raw input.",
    )
    pt.add_argument("recipe", metavar="MODALITY/METHOD", help="e.g. vision/simclr")
    pt.add_argument("--data", metavar="PATH", help="user data (default: the modality's embedded data set)")
    pt.add_argument("--epochs", type=float, metavar="N", help="passes over the data")
    pt.add_argument("--max-steps", type=int, metavar="N", help="stop after N optimizer steps")
    pt.add_argument("--max-minutes", type=float, metavar="M", help="fit the training schedule into M minutes")
    pt.add_argument("--out", metavar="DIR", help="run folder (default: runs/<modality>-<method>-<date>-<time>)")
    pt.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out (default: the latest run of this recipe) from its last checkpoint",
    )
    pt.add_argument("--config", metavar="FILE", help="YAML file of settings, applied before --set")
    pt.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="override settings, e.g. --set train.lr=0.1 method.temperature=0.2",
    )

    ev = sub.add_parser("eval", help="probe a run's checkpoint (kNN and linear) and rewrite its metrics.json")
    ev.add_argument("run", help="run folder")
    ev.add_argument("--checkpoint", metavar="DIR", help="checkpoint folder (default: the latest)")

    ex = sub.add_parser("export", help="write a run's backbone as safetensors + config.json")
    ex.add_argument("run", help="run folder")
    ex.add_argument("out", help="export folder; load it with ssl_core.load_backbone(out)")
    ex.add_argument("--checkpoint", metavar="DIR", help="checkpoint folder (default: the latest)")
    return p


def _list() -> None:
    from ssl_core.registry import discover

    d = discover()
    if not d.modalities and not d.failed:
        print("no modality packages are installed (e.g. pip install ssl-vision)")
    for name, m in sorted(d.modalities.items()):
        print(f"{name}: {m.summary}")
        width = max((len(name) + 1 + len(r) for r in m.recipes), default=0)
        for rname, r in sorted(m.recipes.items()):
            print(f"  {f'{name}/{rname}':<{width}}  {r.summary}")
        for dname, desc in m.datasets.items():
            print(f"  data {dname}: {desc}")
    for name, err in sorted(d.failed.items()):
        print(f"{name}: failed to load ({err})")


def _one_line(e: BaseException) -> str:
    """The message of a user error on one line. An error raised in a data-loader worker arrives wrapped in
    the worker's traceback text; its last line holds the original message."""
    lines = [ln for ln in str(e).splitlines() if ln.strip()]
    if not lines:
        return type(e).__name__
    if "Original Traceback" in str(e):
        last = lines[-1]
        return last.split(": ", 1)[1] if last.split(": ", 1)[0].endswith("Error") else last
    return " ".join(ln.strip() for ln in lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``selfsup`` command; returns the exit status."""
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "list":
            _list()
        elif args.command == "pretrain":
            from ssl_core.run import pretrain

            pretrain(
                args.recipe,
                data=args.data,
                epochs=args.epochs,
                max_steps=args.max_steps,
                max_minutes=args.max_minutes,
                out=args.out,
                resume=args.resume,
                overrides=args.overrides,
                config_file=args.config,
            )
        elif args.command == "eval":
            from ssl_core.eval.embed import format_table
            from ssl_core.run import evaluate

            print(format_table(evaluate(args.run, args.checkpoint)))
        elif args.command == "export":
            from ssl_core.export import export_backbone

            out = export_backbone(args.run, args.out, args.checkpoint)
            print(f"exported to {out}; load with ssl_core.load_backbone({str(out)!r})")
    except SelfsupError as e:
        print(f"selfsup: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("selfsup: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

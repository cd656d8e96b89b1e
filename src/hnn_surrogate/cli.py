"""Command-line entry points; each Snakemake rule calls exactly one of them.

``hnn-surrogate <command> --help`` documents each. Arguments are explicit
(no whole-config passing), so every command also runs by hand.
"""

from __future__ import annotations

import argparse
import logging
import sys



def _setup_logging():
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
    )


def _compare_results(args):
    from .compare_results import BAD, compare_results, format_report

    rows = compare_results(args.a, args.b, rtol=args.rtol)
    text = format_report(rows, args.a, args.b, args.rtol)
    print(text)
    if args.out:
        from .artifacts import atomic_output

        with atomic_output(args.out) as tmp:
            tmp.write_text(text + "\n")
    if any(r.verdict in BAD for r in rows):
        raise SystemExit(1)


def build_parser() -> argparse.ArgumentParser:
    """The ``hnn-surrogate`` parser: each stage registers its own subcommands."""
    from .bench import commands as bench
    from .cells import commands as cells
    from .network import commands as network
    from .optimize import commands as optimize
    from .surrogate import commands as surrogate

    parser = argparse.ArgumentParser(prog="hnn-surrogate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for stage in (cells, surrogate, network, optimize, bench):
        stage.register(sub)
    p = sub.add_parser("compare-results",
                       help="two result folders, stage by stage: equal, or where they differ "
                            "(exit status 1 if they differ)")
    p.add_argument("a", help="a results/ folder")
    p.add_argument("b", help="another results/ folder")
    p.add_argument("--rtol", type=float, default=0.0,
                   help="relative difference still counted as close (default 0: bit for bit)")
    p.add_argument("--out", help="also write the report here (markdown)")
    p.set_defaults(func=_compare_results)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    _setup_logging()
    args.func(args)


if __name__ == "__main__":
    main()

"""``tinytorch-data``: the command line of the data pipeline.

Each subcommand lives in its own module with ``add_parser(subparsers)`` and ``run(args) -> int``;
this module dispatches, and turns what goes wrong into exit codes: 0 success, 1 a check that
failed (``check``, ``verify``), 2 a usage or input problem (one or two lines on stderr, in
command-line terms, no traceback), 130 interrupted. A traceback means a bug.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import tinytorch
from tinytorch.cli import bench, check, convert, demo, profile
from tinytorch.cli.args import HelpFormatter, Parser, examples, ignored_options
from tinytorch.cli.errors import explain

COMMANDS = [demo, check, bench, profile, convert]


def version() -> str:
    """What ``--version`` prints: the running code's version and location, Python and numpy."""
    where = Path(tinytorch.__file__).parent
    return (
        f"tinytorch-data {tinytorch.__version__} from {where} "
        f"(Python {platform.python_version()}, numpy {np.__version__})"
    )


def build_parser() -> Parser:
    parser = Parser(
        prog="tinytorch-data",
        description="tinytorch data: a deterministic, vectorized data pipeline on numpy.",
        epilog=examples(
            "tinytorch-data demo                 # train on CIFAR-10 (downloads 163 MB once)",
            "tinytorch-data demo --synthetic     # the same on generated data, no download",
            "tinytorch-data check                # self-check of the installation",
            "tinytorch-data COMMAND --help       # a command's options and examples",
        ),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=version())
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def _parse(parser: Parser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse; an unknown option is reported by the (sub)command it was given to (with its help)."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        owner: argparse.ArgumentParser = parser
        while True:  # down to the innermost command chosen (``convert imagefolder``)
            sub = next((a for a in owner._actions if isinstance(a, argparse._SubParsersAction)), None)
            chosen = getattr(args, sub.dest, None) if sub is not None else None
            if sub is None or chosen not in sub.choices:
                break
            owner = sub.choices[chosen]
        owner.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    try:
        args = _parse(parser, argv)
    except SystemExit as e:  # --help, --version, a usage error: argparse has printed it
        return e.code if isinstance(e.code, int) else 2
    if args.command is None:
        parser.print_help()
        return 2
    ignored = ignored_options(args)
    if ignored is not None:  # a usage error, found before any work
        prog = f"tinytorch-data {args.command}"
        print(f"{prog}: error: {ignored}\nRun '{prog} --help' to see the options.", file=sys.stderr)
        return 2
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        print(f"\ntinytorch-data {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `tinytorch-data bench | head`: the reader left; stop quietly
        _silence_stdout()
        return 1
    except Exception as e:
        message = explain(e, args)
        if message is None:
            raise
        print(f"tinytorch-data {args.command}: error: {message}", file=sys.stderr)
        return 2
    return code


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's last flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())

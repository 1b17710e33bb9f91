"""Argument parsing shared by the subcommands: the parser, the help layout, the value checks.

Every check of a command-line value happens here, while the arguments are parsed, so a bad
value is reported before any work starts, in one line that names the flag (argparse's own
wording: ``argument --epochs: ...``), with exit code 2.
"""

from __future__ import annotations

import argparse
import math
import os
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

__all__ = [
    "Given",
    "Parser",
    "add_cifar_options",
    "at_least",
    "directory_or_new",
    "examples",
    "existing_directory",
    "ignored_options",
    "positive_float",
    "was_given",
    "writable_file",
]


DEFAULT_ROOT = "./data"
"""``--root`` unless given: where CIFAR-10 is, or is downloaded to."""


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose usage errors are two lines, not the whole usage text.

    ``tinytorch-data demo: error: argument --epochs: must be at least 1, got 0`` and where to
    find the options; exit code 2 (argparse's, and the convention for usage errors).
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\nRun '{self.prog} --help' to see the options.\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks and shows each option's default after its help."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            not text
            or "%(default)" in text
            or default is None
            or default is False
            or default == argparse.SUPPRESS
            or action.option_strings == []
        ):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


def examples(*lines: str) -> str:
    """An ``epilog`` listing example command lines."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def subcommand(
    subparsers: argparse._SubParsersAction[Any],
    name: str,
    summary: str,
    details: str,
    *example_lines: str,
) -> argparse.ArgumentParser:
    """A subcommand's parser: ``summary`` is its one-line description (in ``tinytorch-data
    --help`` too), ``details`` a paragraph under it, ``example_lines`` its epilog."""
    body = textwrap.fill(details, width=88)
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=summary,
        description=f"{summary[0].upper()}{summary[1:]}.\n\n{body}",
        epilog=examples(*example_lines) if example_lines else None,
        formatter_class=HelpFormatter,
    )
    return parser


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer ``>= minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def positive_float(text: str) -> float:
    """An argparse ``type``: a finite number ``> 0``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def directory_or_new(text: str) -> Path:
    """An argparse ``type``: a directory, or a path where one can be created (not a file).

    Returned absolute, so that every message names the place without ambiguity."""
    path = Path(text).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a directory; pass a directory")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(f"{parent} is a file, so {text} cannot be created")
            break
    return path


def existing_directory(text: str) -> Path:
    """An argparse ``type``: a directory that exists (returned absolute)."""
    path = Path(text).expanduser().absolute()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text} does not exist; pass an existing directory")
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a directory; pass a directory")
    return path


def writable_file(text: str) -> Path:
    """An argparse ``type``: a file to write (its folder is created if needed; not a directory).

    The file, or the nearest folder that exists on its way, must be writable: the results are
    written after the measurement, and a place that refuses them lost minutes of work."""
    path = Path(text).expanduser().absolute()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory; pass a file name such as {text}/out.json")
    directory_or_new(str(path.parent))
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not os.access(existing, os.W_OK):
        raise argparse.ArgumentTypeError(
            f"{text} cannot be written: {existing} is not writable; pass a file in a folder you can write"
        )
    return path


def add_cifar_options(parser: argparse.ArgumentParser, *, downloads: bool, env: str = "CIFAR10") -> None:
    """``--root`` and the mirror options: ``--url``/``--md5`` where the command downloads,
    ``--md5`` alone where it only reads an archive that is already in ``--root``. ``env`` names
    the environment variables' dataset part (``$TINYTORCH_<env>_URL``)."""
    where = (
        "where CIFAR-10 is, or is downloaded to" if downloads else "where CIFAR-10 is (nothing is downloaded)"
    )
    parser.add_argument("--root", type=directory_or_new, default=DEFAULT_ROOT, help=where)
    if downloads:
        parser.add_argument(
            "--url",
            default=None,
            help=f"a mirror of the archive (http, https or file URL; default $TINYTORCH_{env}_URL, else "
            "the official address)",
        )
    parser.add_argument(
        "--md5",
        default=None,
        help=f"the archive's MD5, for a mirror's copy (default $TINYTORCH_{env}_MD5, else the official "
        "archive's)",
    )


class Given(argparse.Action):
    """argparse's ``store`` action that also records that the option was on the command line
    (read with :func:`was_given`): an option whose value equals its default was still given."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        namespace.given_options = frozenset({*getattr(namespace, "given_options", ()), self.dest})


def was_given(args: argparse.Namespace, dest: str) -> bool:
    """Whether the option stored in ``dest`` (with ``action=Given``) was on the command line."""
    return dest in getattr(args, "given_options", ())


_SYNTHETIC_ONLY = {"size": "--size", "synthetic_size": "--synthetic-size"}
"""Options (by ``dest``) that only say how much data ``--synthetic`` generates."""


def ignored_options(args: argparse.Namespace) -> str | None:
    """An option the chosen command would silently ignore, as a message with the fix; ``None``
    when there is none.

    With ``--synthetic`` the options that say where CIFAR-10 is (``--root`` naming another
    folder than its default, ``--url``, ``--md5``; ``$TINYTORCH_CIFAR10_URL``/``_MD5`` are not
    options and stay allowed); without it, ``--size``/``--synthetic-size`` (how many images to
    generate) given at all, even with their default value.
    """
    if not getattr(args, "synthetic", False):
        for dest, flag in _SYNTHETIC_ONLY.items():
            if was_given(args, dest):
                return f"{flag} sets how many images --synthetic generates: add --synthetic, or drop {flag}"
        return None
    given = []
    root = getattr(args, "root", None)
    # realpath, not Path.resolve: a symlink loop is just another folder, not a RuntimeError
    if root is not None and os.path.realpath(root) != os.path.realpath(DEFAULT_ROOT):
        given.append(f"--root {root}")
    given += [f"--{name}" for name in ("url", "md5") if getattr(args, name, None) is not None]
    if not given:
        return None
    purpose = "train on" if getattr(args, "command", None) == "demo" else "measure"
    return (
        f"--synthetic generates its data, so {' and '.join(given)} would be ignored: drop "
        f"{'them' if len(given) > 1 else 'it'} to {purpose} generated data, or drop --synthetic to use "
        "CIFAR-10 from --root"
    )

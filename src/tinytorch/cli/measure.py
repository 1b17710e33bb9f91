"""What ``bench`` and ``profile`` share: the data they measure, their outputs, their tables."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tinytorch.analysis.machine import describe_machine, versions
from tinytorch.analysis.plots import matplotlib_missing
from tinytorch.analysis.sources import load_source
from tinytorch.cli.args import (
    Given,
    add_cifar_options,
    at_least,
    directory_or_new,
    writable_file,
)
from tinytorch.cli.errors import CommandError
from tinytorch.data.storage.atomic import atomic_write

__all__ = ["add_measure_options", "format_table", "load_dataset", "machine_lines", "prepare_outputs"]

SYNTHETIC_SIZE = 50_000
"""Images ``--synthetic`` generates unless ``--size`` says otherwise."""

PIPELINE = "pad-4 random crop + horizontal flip + normalize to float32, per batch"


def add_measure_options(parser: argparse.ArgumentParser) -> None:
    add_cifar_options(parser, downloads=False)
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="measure generated CIFAR-shaped data instead (no files needed)",
    )
    parser.add_argument(
        "--size",
        type=at_least(1),
        default=SYNTHETIC_SIZE,
        action=Given,
        help="number of generated images (--synthetic)",
    )
    parser.add_argument(
        "--json", type=writable_file, default=None, help="also write the results as JSON to this file"
    )
    parser.add_argument(
        "--out", type=directory_or_new, default="tinytorch-plots", help="folder for the PNG plots (created)"
    )
    parser.add_argument("--no-plots", action="store_true", help="print the table only")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def prepare_outputs(args: argparse.Namespace) -> bool:
    """Check and create the output places before any work; whether plots will be drawn.

    Without matplotlib the command still measures and prints its table: it says so first.
    """
    plots = not args.no_plots
    if plots:
        missing = matplotlib_missing()
        if missing is not None:
            print(f"note: {missing} (or pass --no-plots); the table is printed as usual", file=sys.stderr)
            plots = False
    if plots:
        args.out.mkdir(parents=True, exist_ok=True)
        if not os.access(args.out, os.W_OK):  # found now, not after minutes of measuring
            raise CommandError(
                f"--out {args.out} is not writable: pass a folder you can write, or --no-plots"
            )
    return plots


def load_dataset(
    args: argparse.Namespace, largest_batch: int, needed: int, *, fixed: bool = False
) -> tuple[Any, str]:
    """The data to measure; a :class:`CommandError` when it holds fewer than ``needed`` samples.

    ``fixed``: ``largest_batch`` is the command's own (``bench``'s baseline), not one of
    ``--batch-sizes``, so only a larger ``--size`` helps.
    """
    if args.synthetic:
        _check_room_for(args.size)
    try:
        dataset, description = load_source(args.root, args.synthetic, args.size, md5=args.md5)
    except MemoryError as e:
        if not args.synthetic:
            raise
        raise CommandError(_too_large(args.size, "more memory than this process could get")) from e
    if len(dataset) < needed:
        size = "a larger --size" if args.synthetic else "more data"
        what, fix = (
            (f"the baseline's batch of {largest_batch} (measured in every run)", size)
            if fixed
            else (
                f"--batch-sizes {largest_batch}",
                f"{size} or smaller --batch-sizes" if args.synthetic else "smaller --batch-sizes",
            )
        )
        raise CommandError(
            f"{what} needs at least {needed:,} images; the data has {len(dataset):,}: pass {fix}"
        )
    return dataset, description


GENERATING_BYTES_PER_IMAGE = 48 * 1024
"""Peak memory per image while ``--synthetic`` data is generated (float32 images, and float64
noise with its float32 copy, in ``tinytorch.demo.synthetic``); 3 KB per image are kept."""


def _too_large(size: int, available: str) -> str:
    need = size * GENERATING_BYTES_PER_IMAGE / 1e9
    return (
        f"--size {size:,}: generating that many images needs about {need:,.1f} GB of memory, "
        f"{available}: pass a smaller --size (the default, 50,000, needs about 2.5 GB)"
    )


def _check_room_for(size: int) -> None:
    """A ``--size`` whose generation cannot fit in the machine's memory is refused before any
    work: a ``MemoryError`` came out as a traceback, or the kernel killed the process."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not a POSIX system: MemoryError is caught
        return
    if physical > 0 and size * GENERATING_BYTES_PER_IMAGE > physical:
        raise CommandError(_too_large(size, f"more than this machine has ({physical / 1e9:,.1f} GB)"))


def machine_lines(command: str, description: str) -> list[str]:
    return [f"tinytorch-data {command}: {description}; {PIPELINE}", f"{describe_machine()}; {versions()}"]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, left: int = 1) -> str:
    """Columns as wide as their widest cell or header (headers are never cut); the first
    ``left`` columns left-aligned, the others right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])


def write_json(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)  # only now, when there is something to write
    with atomic_write(path) as f:  # a full disk or an interruption leaves no half-written file
        f.write(text.encode())
    print(f"wrote {path}")

"""``tinytorch-data profile``: input-pipeline memory across batch sizes, and what fits a budget."""

from __future__ import annotations

import argparse
import json

import numpy as np

from tinytorch.analysis.machine import describe_machine, versions
from tinytorch.analysis.plots import INSTALL_HINT, Series, line_chart
from tinytorch.analysis.profile import (
    MemoryFit,
    MemoryPoint,
    fit_memory,
    load_compiled_kernels,
    profile_memory,
    pss_bytes,
)
from tinytorch.cli.args import at_least, positive_float, subcommand
from tinytorch.cli.errors import CommandError
from tinytorch.cli.measure import (
    PIPELINE,
    add_measure_options,
    format_table,
    load_dataset,
    machine_lines,
    prepare_outputs,
    write_json,
)

MB = 1 << 20


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subcommand(
        subparsers,
        "profile",
        "input-pipeline memory per batch size, and what fits a budget",
        "Measures each batch size in its own process (peak anonymous and shared memory, PSS, while "
        "holding batches; a memory-mapped dataset is page cache and not counted), fits "
        "memory = fixed + per-image x batch size, and gives the largest batch whose input pipeline "
        "fits --budget-mb, saying when that answer is extrapolated. Model activations, gradients "
        "and optimizer state are not included.",
        "tinytorch-data profile --synthetic --budget-mb 1024",
        "tinytorch-data profile --root ./data --batch-sizes 256 1024 4096 --json profile.json",
    )
    add_measure_options(p)
    p.add_argument(
        "--batch-sizes",
        type=at_least(1),
        nargs="+",
        default=[32, 64, 128, 256, 512, 1024, 2048],
        help="batch sizes to measure",
    )
    p.add_argument(
        "--budget-mb", type=positive_float, default=1024.0, help="memory budget for the input pipeline (MB)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    sizes = sorted(set(args.batch_sizes))
    if len(sizes) < 2:
        raise CommandError(
            f"--batch-sizes {' '.join(map(str, args.batch_sizes))}: the fit of memory against batch size "
            "needs two different batch sizes at least (e.g. --batch-sizes 64 1024)"
        )
    if pss_bytes() == 0:  # a live process always has some: the file cannot be read here
        raise CommandError(
            "profile measures memory with /proc/self/smaps_rollup (Linux 4.14 or later), which this "
            "system does not provide, so it cannot measure here (every figure would read 0 MB). "
            "Run it on a Linux machine"
        )
    plots = prepare_outputs(args)
    dataset, description = load_dataset(args, sizes[-1], sizes[-1])
    kernels = load_compiled_kernels()
    points = profile_memory(dataset, sizes)
    fit = fit_memory(points)
    for line in machine_lines("profile", description):
        print(line)
    print(
        "each batch size measured in its own process: peak increase of anonymous and shared memory "
        "(PSS) over its first 5 batches; the memory-mapped dataset is page cache and not counted"
    )
    if kernels:
        print(
            f"numba's compiled transform kernels (the fast extra): {kernels / MB:.0f} MB once per process, "
            "loaded before measuring and not in the figures below"
        )
    print()
    rows = [
        [f"{p.batch_size:,}", f"{p.bytes_per_batch / MB:.2f}", f"{p.peak_pipeline_bytes / MB:.1f}"]
        for p in points
    ]
    print(format_table(["batch", "one batch (MB)", "pipeline peak (MB)"], rows, left=0))
    print(
        f"fit: memory = {fit.fixed_bytes / MB:.1f} MB + {fit.bytes_per_sample / 1024:.1f} KB x batch size "
        f"(through batches {fit.measured[0]:,} to {fit.measured[1]:,})"
    )
    best = fit.largest_within(int(args.budget_mb * MB))
    print(verdict(fit, best, args.budget_mb, len(dataset)))
    print(
        "Model activations, gradients and optimizer state are NOT included: they need memory on top of this."
    )
    if args.json:
        document = {
            "points": [p.to_json() for p in points],
            "fit": {"fixed_bytes": fit.fixed_bytes, "bytes_per_sample": fit.bytes_per_sample},
            "compiled_kernels_bytes": kernels,
            "budget_mb": args.budget_mb,
            "largest_batch": best,
            "extrapolated": best is not None and fit.extrapolates(best),
        }
        write_json(args.json, json.dumps(document, indent=1))
    if plots:
        print(f"plot: {draw(points, fit, args, description)}")
    elif not args.no_plots:
        print(f"plot: none (matplotlib is not installed; {INSTALL_HINT})")
    return 0


def verdict(fit: MemoryFit, best: int | None, budget_mb: float, available: int) -> str:
    """The answer in words, saying when it is extrapolated beyond the measured batch sizes."""
    head = f"largest batch whose input pipeline fits {budget_mb:,.0f} MB:"
    if fit.bytes_per_sample <= 0:
        return (
            f"{head} unknown: the measured memory did not grow with the batch size (too small to "
            "see against the noise); measure larger batches with --batch-sizes"
        )
    if best is None:
        return f"{head} none (even a batch of one exceeds it)"
    if not fit.extrapolates(best):
        return f"{head} {best:,} (within the measured batch sizes)"
    side = "largest" if best > fit.measured[1] else "smallest"
    check = (
        f"; measure it with --batch-sizes {fit.measured[1]} {best}"
        if best <= available
        else f"; it exceeds the data ({available:,} images), so it cannot be measured on it"
    )
    return (
        f"{head} {best:,}, EXTRAPOLATED from the fit beyond the {side} batch measured "
        f"({fit.measured[1] if side == 'largest' else fit.measured[0]:,}){check}"
    )


def draw(points: list[MemoryPoint], fit: MemoryFit, args: argparse.Namespace, description: str) -> str:
    sizes = [p.batch_size for p in points]
    grid = np.geomspace(sizes[0], sizes[-1], 50)
    caption = (
        f"{describe_machine()}; {versions()}\n{description}; {PIPELINE}\n"
        "peak anonymous + shared memory (PSS) over 5 batches, one process per batch size; "
        "model memory not included"
    )
    fit_label = f"linear fit: {fit.fixed_bytes / MB:.1f} MB + {fit.bytes_per_sample / 1024:.1f} KB x batch"
    path = line_chart(
        args.out / "memory_vs_batch_size.png",
        title="Input-pipeline memory vs batch size",
        xlabel="batch size (images per batch)",
        ylabel="memory (MB)",
        series={
            "pipeline peak (measured)": Series(sizes, [p.peak_pipeline_bytes / MB for p in points]),
            fit_label: Series(list(grid), [fit.predict(b) / MB for b in grid], dashed=True, markers=False),
            "one float32 batch": Series(sizes, [p.bytes_per_batch / MB for p in points]),
        },
        caption=caption,
        xticks=sizes,
        log2_x=True,
    )
    return str(path)

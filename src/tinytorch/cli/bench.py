"""``tinytorch-data bench``: sweep batch size, workers, storage and shuffle on this machine."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tinytorch.analysis.bench import (
    BASELINE,
    WARMUP_BATCHES,
    BenchResult,
    compare,
    confidence,
    run_sweep,
    sweep_settings,
)
from tinytorch.analysis.machine import describe_machine, versions
from tinytorch.analysis.plots import INSTALL_HINT, Series, line_chart, stacked_bars
from tinytorch.cli.args import at_least, positive_float, subcommand
from tinytorch.cli.measure import (
    PIPELINE,
    add_measure_options,
    format_table,
    load_dataset,
    machine_lines,
    prepare_outputs,
    write_json,
)
from tinytorch.data.loader.stats import STAGES


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subcommand(
        subparsers,
        "bench",
        "loader throughput across batch size, workers, storage, shuffle",
        "Each setting is timed in several interleaved rounds after a warm-up; the table gives the "
        "median images/s with the interval of the rounds, a round-by-round comparison with the "
        "baseline, and the time per image in each stage; PNG plots go to --out (needs matplotlib). "
        "Reads CIFAR-10 from --root (nothing is downloaded) or generates data (--synthetic). With the "
        "defaults a run takes about a minute.",
        "tinytorch-data bench --synthetic                      # no files needed",
        "tinytorch-data bench --root ./data --out plots --json bench.json",
        "tinytorch-data bench --synthetic --batch-sizes 128 512 --workers 0 2 --rounds 7",
    )
    add_measure_options(p)
    p.add_argument(
        "--batch-sizes",
        type=at_least(1),
        nargs="+",
        default=[64, 128, 256, 512, 1024],
        help="batch sizes to try",
    )
    p.add_argument("--workers", type=at_least(0), nargs="+", default=[0, 1, 2], help="worker counts to try")
    p.add_argument(
        "--storage",
        nargs="+",
        choices=["memory", "sharded"],
        default=["memory", "sharded"],
        help="where the data is read from",
    )
    p.add_argument(
        "--seconds",
        type=positive_float,
        default=0.5,
        help="time each setting for at least this long in each round (after the warm-up)",
    )
    p.add_argument(
        "--rounds",
        type=at_least(2),
        default=5,
        help="times each setting is measured, interleaved (5: a 94%% interval for the median, 7: 98%%)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    plots = prepare_outputs(args)
    # The baseline runs whatever --batch-sizes says: with fewer images than its warm-up and a
    # batch, its "batch 256" was measured on short batches and every ratio was off.
    largest = max(*args.batch_sizes, BASELINE.batch_size)
    dataset, description = load_dataset(
        args, largest, (WARMUP_BATCHES + 1) * largest, fixed=largest not in args.batch_sizes
    )
    settings = sweep_settings(args.batch_sizes, args.workers, args.storage)
    from tqdm import tqdm

    show = not args.quiet and sys.stderr.isatty()
    with tqdm(total=len(settings) * args.rounds, desc="bench", unit="run", disable=not show) as bar:
        results = run_sweep(
            dataset, settings, seconds=args.seconds, rounds=args.rounds, on_measured=bar.update
        )
    for line in [*machine_lines("bench", description), *_method(args), ""]:
        print(line)
    print(throughput_table(results, args.rounds))
    print(
        "* the median of the round-by-round ratios to the baseline (rounds run in turns), with their "
        "lowest-highest interval: more robust to a machine's swings than a ratio of the medians"
    )
    print()
    print(
        "where the time goes, in µs per image (stages summed over workers, so with workers the sum "
        "can exceed the wall time per image)"
    )
    print(stage_table(results))
    if args.json:
        write_json(args.json, json.dumps([r.to_json() for r in results], indent=1))
    if plots:
        paths = draw(results, args.out, description, args)
        print("plots: " + ", ".join(str(p) for p in paths))
    elif not args.no_plots:
        print(f"plots: none (matplotlib is not installed; {INSTALL_HINT})")
    return 0


def _method(args: argparse.Namespace) -> list[str]:
    return [
        f"each figure: median of {args.rounds} interleaved rounds of at least {args.seconds:g} s, timed "
        f"after {WARMUP_BATCHES} warm-up batches (workers started, persistent); interval: lowest to "
        f"highest round ({confidence(args.rounds):.0%} confidence for the median)",
        "baseline: batch 256, 2 thread workers, in memory, shuffled; every other row changes one thing",
    ]


def throughput_table(results: list[BenchResult], rounds: int) -> str:
    baseline = results[0]
    rows = []
    for r in results:
        c = compare(r, baseline)
        if r is baseline:
            versus, verdict = "1.00x", ""
        else:
            versus = f"{c.ratio:.2f}x ({c.low:.2f}–{c.high:.2f})"
            verdict = "same within noise" if c.within_noise else ("faster" if c.ratio > 1 else "slower")
        rows.append(
            [
                r.setting.sweep.replace("_", " "),
                r.setting.change,
                f"{r.images_per_second:,.0f}",
                f"{r.low:,.0f}–{r.high:,.0f}",
                versus,
                verdict,
            ]
        )
    interval = f"interval ({confidence(rounds):.0%})"
    return format_table(["sweep", "setting", "images/s", interval, "vs baseline*", ""], rows, left=2)


def stage_table(results: list[BenchResult]) -> str:
    rows = []
    for r in results:
        stages = r.stage_us_per_image
        rows.append(
            [
                r.setting.sweep.replace("_", " "),
                r.setting.change,
                *(f"{stages[s]:.2f}" for s in STAGES),
                f"{sum(stages.values()):.2f}",
                f"{1e6 / r.images_per_second:.2f}",
            ]
        )
    return format_table(["sweep", "setting", *STAGES, "sum", "wall"], rows, left=2)


def _caption(description: str, args: argparse.Namespace, bars: bool = True) -> str:
    spread = f"; error bars: lowest to highest round ({confidence(args.rounds):.0%} interval)" if bars else ""
    return (
        f"{describe_machine()}; {versions()}\n{description}; {PIPELINE}\n"
        f"median of {args.rounds} interleaved rounds of {args.seconds:g} s after {WARMUP_BATCHES} warm-up "
        f"batches{spread}"
    )


def _series(rows: list[BenchResult], x: list[int]) -> Series:
    return Series(
        x,
        [r.images_per_second / 1000 for r in rows],
        [r.low / 1000 for r in rows],
        [r.high / 1000 for r in rows],
    )


def draw(results: list[BenchResult], out: Path, description: str, args: argparse.Namespace) -> list[Path]:
    caption = _caption(description, args)
    baseline = results[0].setting
    by_size = sorted(
        (r for r in results if r.setting.sweep in ("baseline", "batch_size")),
        key=lambda r: r.setting.batch_size,
    )
    sizes = [r.setting.batch_size for r in by_size]
    paths = [
        line_chart(
            out / "throughput_vs_batch_size.png",
            title=f"Throughput vs batch size ({baseline.workers}, in memory, shuffled)",
            xlabel="batch size (images per batch)",
            ylabel="throughput (thousand images/s)",
            series={"median": _series(by_size, sizes)},
            caption=caption,
            xticks=sizes,
            log2_x=True,
        )
    ]
    by_workers = [r for r in results if r.setting.sweep in ("baseline", "workers")]
    series = {}
    for kind in ("thread", "process"):
        rows = sorted(
            (r for r in by_workers if r.setting.worker_type == kind or r.setting.num_workers == 0),
            key=lambda r: r.setting.num_workers,
        )
        if len(rows) > 1 or any(r.setting.num_workers for r in rows):
            series[f"{kind} workers"] = _series(rows, [r.setting.num_workers for r in rows])
    counts = sorted({r.setting.num_workers for r in by_workers})
    paths.append(
        line_chart(
            out / "throughput_vs_workers.png",
            title=f"Throughput vs workers (batch {baseline.batch_size}; 0 = in the training process)",
            xlabel="num_workers (worker threads or processes)",
            ylabel="throughput (thousand images/s)",
            series=series,
            caption=caption,
            xticks=counts,
        )
    )
    labels = [
        f"baseline (batch {r.setting.batch_size}, {r.setting.workers})"
        if r.setting.sweep == "baseline"
        else r.setting.change
        for r in results
    ]
    paths.append(
        stacked_bars(
            out / "stage_breakdown.png",
            title="Where each image's time goes, by stage",
            xlabel="time per image (µs; stages summed over workers)",
            labels=labels,
            stacks={s.replace("_", " "): [r.stage_us_per_image[s] for r in results] for s in STAGES},
            caption=_caption(description, args, bars=False),
            marks=("wall time per image (1 / throughput)", [1e6 / r.images_per_second for r in results]),
        )
    )
    return paths

"""``tinytorch-data bench`` and ``tinytorch-data profile``: measure the pipeline on this machine."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tinytorch.analysis.bench import run_sweep, sweep_settings
from tinytorch.analysis.plots import line_chart, stacked_bars
from tinytorch.analysis.profile import largest_batch_within, profile_memory
from tinytorch.analysis.sources import load_source
from tinytorch.data.loader.stats import STAGES


def _source_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", default="./data", help="where CIFAR-10 is (nothing is downloaded)")
    p.add_argument("--synthetic", action="store_true", help="generated CIFAR-shaped data instead")
    p.add_argument("--size", type=int, default=50_000, help="number of generated images")
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    p.add_argument("--out", type=Path, default=Path("tinytorch-plots"), help="folder for the PNG plots")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = subparsers.add_parser("bench", help="sweep batch size, workers, storage, shuffle")
    _source_arguments(bench)
    bench.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    bench.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    bench.add_argument("--storage", nargs="+", choices=["memory", "sharded"], default=["memory", "sharded"])
    bench.add_argument("--batches", type=int, default=60, help="batches measured per setting")
    bench.set_defaults(run=run_bench)
    profile = subparsers.add_parser("profile", help="pipeline memory across batch sizes")
    _source_arguments(profile)
    profile.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64, 128, 256, 512, 1024, 2048])
    profile.add_argument(
        "--budget-mb", type=float, default=1024.0, help="memory budget for the input pipeline (MB)"
    )
    profile.set_defaults(run=run_profile)


def _dataset(args: argparse.Namespace) -> tuple[object, str] | None:
    try:
        return load_source(args.root, args.synthetic, args.size)
    except FileNotFoundError as e:
        print(f"{e}\nRun `tinytorch-data demo` once to download CIFAR-10, or pass --synthetic.")
        return None


def run_bench(args: argparse.Namespace) -> int:
    source = _dataset(args)
    if source is None:
        return 2
    dataset, description = source
    settings = sweep_settings(args.batch_sizes, args.workers, args.storage)
    results = run_sweep(
        dataset, settings, max_batches=args.batches, progress=not args.quiet and sys.stderr.isatty()
    )
    print(f"tinytorch-data bench: {description}; crop+flip+normalize per batch; {args.batches} batches each")
    header = (
        f"{'sweep':<11}{'batch':>6}{'workers':>9} {'type':<8}{'storage':<9}{'shuffle':<8}{'images/s':>11}"
    )
    print(header + "".join(f"{s[:10]:>11}" for s in STAGES) + "  (ms/batch)")
    for r in results:
        s = r.setting
        print(
            f"{s.sweep:<11}{s.batch_size:>6}{s.num_workers:>9} {s.worker_type if s.num_workers else '-':<8}"
            f"{s.storage:<9}{'on' if s.shuffle else 'off':<8}{r.images_per_second:>11,.0f}"
            + "".join(f"{r.stage_ms_per_batch.get(n, 0):>11.2f}" for n in STAGES)
        )
    if args.json:
        args.json.write_text(json.dumps([r.to_json() for r in results], indent=1))
        print(f"wrote {args.json}")
    if not args.no_plots:
        args.out.mkdir(parents=True, exist_ok=True)
        base = [r for r in results if r.setting.sweep in ("baseline", "batch_size")]
        base.sort(key=lambda r: r.setting.batch_size)
        paths = [
            line_chart(
                args.out / "throughput_vs_batch_size.png",
                "Throughput vs batch size",
                "batch size",
                "images/s",
                {
                    "2 thread workers": (
                        [r.setting.batch_size for r in base],
                        [r.images_per_second for r in base],
                    )
                },
            )
        ]
        series = {}
        for kind in ("thread", "process"):
            rows = [
                r
                for r in results
                if r.setting.sweep in ("baseline", "workers")
                and (r.setting.worker_type == kind or r.setting.num_workers == 0)
            ]
            rows.sort(key=lambda r: r.setting.num_workers)
            series[kind] = (
                [r.setting.num_workers for r in rows],
                [r.images_per_second for r in rows],
            )
        paths.append(
            line_chart(
                args.out / "throughput_vs_workers.png",
                "Throughput vs workers",
                "num_workers",
                "images/s",
                series,
            )
        )
        labels = [
            f"{r.setting.sweep}:{r.setting.batch_size}/{r.setting.num_workers}{r.setting.worker_type[0]}"
            f"/{r.setting.storage[0]}/{'s' if r.setting.shuffle else 'n'}"
            for r in results
        ]
        paths.append(
            stacked_bars(
                args.out / "stage_breakdown.png",
                "Where a batch's time goes",
                "ms per batch (summed over workers)",
                labels,
                {n: [r.stage_ms_per_batch.get(n, 0) for r in results] for n in STAGES},
            )
        )
        print("plots: " + ", ".join(str(p) for p in paths))
    return 0


def run_profile(args: argparse.Namespace) -> int:
    source = _dataset(args)
    if source is None:
        return 2
    dataset, description = source
    points = profile_memory(dataset, args.batch_sizes)
    budget = int(args.budget_mb * (1 << 20))
    best = largest_batch_within(points, budget)
    print(f"tinytorch-data profile: {description}; crop+flip+normalize per batch, float32 output")
    print(f"{'batch':>7}{'MB/batch':>11}{'pipeline peak MB':>18}")
    for p in points:
        print(
            f"{p.batch_size:>7}{p.bytes_per_batch / (1 << 20):>11.2f}"
            f"{p.peak_pipeline_bytes / (1 << 20):>18.1f}"
        )
    verdict = f"{best:,}" if best is not None else "none (even one sample exceeds it)"
    print(
        f"largest batch whose input pipeline fits {args.budget_mb:.0f} MB: {verdict}. Model activations, "
        "gradients and optimizer state are NOT included: they need memory on top of this."
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "points": [p.to_json() for p in points],
                    "budget_mb": args.budget_mb,
                    "largest_batch": best,
                },
                indent=1,
            )
        )
        print(f"wrote {args.json}")
    if not args.no_plots:
        args.out.mkdir(parents=True, exist_ok=True)
        sizes = [p.batch_size for p in points]
        path = line_chart(
            args.out / "memory_vs_batch_size.png",
            "Input-pipeline memory vs batch size",
            "batch size",
            "MB",
            {
                "peak pipeline PSS": (sizes, [p.peak_pipeline_bytes / (1 << 20) for p in points]),
                "one batch": (sizes, [p.bytes_per_batch / (1 << 20) for p in points]),
            },
        )
        print(f"plot: {path}")
    return 0

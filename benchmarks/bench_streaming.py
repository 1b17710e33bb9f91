"""Streaming vs in-memory (issue #6): throughput and memory for 1 GB and 4 GB of CIFAR-like records.

For each size, shards of 3x32x32 uint8 images + int64 labels are written to --dir; then one
shuffled epoch through the full augmentation (pad-4 crop, flip, normalize -> float32, batch 256,
2 thread workers) runs in a fresh process for each mode:

  memory     the arrays loaded into RAM (TensorDataset)
  sharded    ShardedDataset, random access (shuffle=True: RandomSampler's stored permutation)
  sharded, index shuffle   the same with IndexShuffleSampler (order computed per chunk)
  windowed   ShardedDataset + WindowedShuffleSampler(window=4), max_open_shards=8
  ..., verify=size   the same without checksums (the default, verify="crc32", checks each
             shard's CRC-32 before its first read in the run: its cost is in the first epoch)

Memory: peak anonymous resident memory (RssAnon in /proc/PID/status: what the kernel cannot
reclaim) and file-backed resident pages (RssFile: page cache mapped in), sampled every 20 ms.
Cold cache: each shard is evicted from the page cache with posix_fadvise(DONTNEED) (no root
needed); the raw sequential read speed of the evicted files is measured once. Then, --repeat
times (default 3): evict, one cold windowed epoch, and the three warm modes in turn. The table
gives each mode's median images/s, its ratio to the in-memory median, and the largest peaks;
with --epochs 2 or more, also the median rate of the epochs after the first in each run.

Usage: python benchmarks/bench_streaming.py --dir /tmp/tt-stream [--sizes 1 4] [--repeat 3] [--epochs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

RECORD = 3 * 32 * 32 + 8
WARM_MODES = (
    "memory",
    "sharded",
    "sharded, verify=size",
    "sharded, index shuffle",
    "windowed",
    "windowed, verify=size",
)


def status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def write(directory: Path, gigabytes: float) -> None:
    import tinytorch as tt

    if (directory / "manifest.json").exists():
        return
    n = int(gigabytes * (1 << 30) / RECORD)
    rng = np.random.default_rng(0)

    def samples():
        for start in range(0, n, 65_536):
            count = min(65_536, n - start)
            images = rng.integers(0, 256, (count, 3, 32, 32), dtype=np.uint8)
            labels = rng.integers(0, 10, count)
            for i in range(count):
                yield images[i], int(labels[i])

    tt.write_shards(samples(), directory, samples_per_shard=20_000, progress=False)


def evict(directory: Path) -> None:
    for path in directory.glob("*.tts"):
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)


def sequential_read(directory: Path) -> float:
    total, start = 0, time.perf_counter()
    for path in sorted(directory.glob("*.tts")):
        with open(path, "rb", buffering=0) as f:
            while block := f.read(8 << 20):
                total += len(block)
    return total / (1 << 20) / (time.perf_counter() - start)


def run_mode(directory: Path, mode: str, epochs: int = 1) -> dict[str, float]:
    import tinytorch as tt
    from tinytorch.analysis.sources import augmentation

    peak = {"anon": 0, "file": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak["anon"] = max(peak["anon"], status_kb("RssAnon"))
            peak["file"] = max(peak["file"], status_kb("RssFile"))
            time.sleep(0.02)

    monitor = threading.Thread(target=sample, daemon=True)
    monitor.start()
    windowed = mode.startswith("windowed")
    verify = "size" if "verify=size" in mode else "crc32"
    sharded = tt.ShardedDataset(directory, max_open_shards=8 if windowed else None, verify=verify)
    kwargs = {
        "batch_size": 256,
        "num_workers": 2,
        "worker_type": "thread",
        "batch_transform": augmentation(),
        "seed": 0,
    }
    if mode == "memory":
        images, labels = sharded.__getitems__(np.arange(len(sharded))).collated()  # private in-RAM copies
        sharded.close()
        dataset = tt.TensorDataset(images, labels)
        del images, labels
        sharded = None
        loader = tt.DataLoader(dataset, shuffle=True, **kwargs)
    elif mode == "sharded, index shuffle":
        loader = tt.DataLoader(sharded, sampler=tt.IndexShuffleSampler(sharded, seed=0), **kwargs)
    elif windowed:
        loader = tt.DataLoader(sharded, sampler=tt.WindowedShuffleSampler(sharded, 4, seed=0), **kwargs)
    else:
        loader = tt.DataLoader(sharded, shuffle=True, **kwargs)
    rates = []
    for _ in range(epochs):
        start = time.perf_counter()
        count = 0
        for x, _ in loader:
            count += len(x)
        rates.append(count / (time.perf_counter() - start))
    stop.set()
    monitor.join()
    return {
        "images_per_second": rates[0],
        "later_images_per_second": statistics.median(rates[1:]) if epochs > 1 else float("nan"),
        "peak_anon_mb": peak["anon"] / 1024,
        "peak_file_mb": peak["file"] / 1024,
        "images": count,
    }


def run_in_child(directory: Path, mode: str, epochs: int) -> dict[str, float]:
    """``epochs`` epochs of ``mode`` in a fresh process (nothing cached in this one)."""
    out = subprocess.run(
        [sys.executable, __file__, "--run", str(directory), mode, "--epochs", str(epochs)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dir", type=Path, default=Path("/tmp/tinytorch-streaming"))
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 4])
    parser.add_argument("--repeat", type=int, default=3, help="runs per mode (median reported)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per run (the first is reported apart)")
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=WARM_MODES,
        default=list(WARM_MODES),
        help="warm modes to run (memory always runs: the ratios' base; the cold run with windowed)",
    )
    parser.add_argument("--run", nargs=2, metavar=("DIR", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_mode(Path(args.run[0]), args.run[1], args.epochs)))
        return
    modes = [m for m in WARM_MODES if m in args.modes or m == "memory"]
    cold = "windowed" in modes
    rows = []
    for size in args.sizes:
        directory = args.dir / f"{size:g}GB"
        start = time.perf_counter()
        write(directory, size)
        print(f"{size:g} GB ready in {directory} ({time.perf_counter() - start:.0f} s)", flush=True)
        evict(directory)
        raw = sequential_read(directory)
        runs: dict[str, list[dict[str, float]]] = {}
        for _ in range(args.repeat):  # modes take turns, so a slow spell of the machine hits all
            # Cold first: the files are then in the page cache the way this library reads them
            # from disk (in 2 MiB folios), which is what the warm runs after it find.
            if cold:
                evict(directory)
                runs.setdefault("windowed, cold cache", []).append(run_in_child(directory, "windowed", 1))
            for mode in modes:
                runs.setdefault(mode, []).append(run_in_child(directory, mode, args.epochs))
        memory = statistics.median(r["images_per_second"] for r in runs["memory"])
        for mode in (*modes, *(["windowed, cold cache"] if cold else [])):
            results = runs[mode]
            rate = statistics.median(r["images_per_second"] for r in results)
            later = statistics.median(r["later_images_per_second"] for r in results)
            rows.append(
                (
                    f"{size:g} GB",
                    mode,
                    f"{rate:,.0f}",
                    f"{rate / memory:.2f}x",
                    "" if later != later else f"{later:,.0f}",
                    f"{max(r['peak_anon_mb'] for r in results):,.0f}",
                    f"{max(r['peak_file_mb'] for r in results):,.0f}",
                )
            )
            print(rows[-1], [round(r["images_per_second"]) for r in results], flush=True)
        rows.append(
            (
                f"{size:g} GB",
                f"raw sequential read: {raw:,.0f} MB/s = {raw * (1 << 20) / RECORD:,.0f} records/s",
                "",
                "",
                "",
                "",
                "",
            )
        )
    sys.path.insert(0, str(Path(__file__).parent))
    from common import print_table

    print_table(
        rows,
        (
            "data",
            "mode",
            "images/s (median)",
            "vs memory",
            "later epochs images/s",
            "peak RssAnon MB",
            "peak RssFile MB",
        ),
    )


if __name__ == "__main__":
    main()

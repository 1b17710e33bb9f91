"""Cost of the loader's statistics: the same epochs with stats=True and stats=False.

Two workloads: a cheap one (TensorDataset, no transform: the loader's overhead dominates, the
worst case for the relative cost) and the CIFAR augmentation pipeline. Interleaved runs,
median of 7 epochs each.

Usage: python benchmarks/bench_stats.py
"""

from __future__ import annotations

import statistics
import time

import numpy as np

import tinytorch as tt
from common import print_table
from tinytorch.analysis.sources import augmentation


def epoch_seconds(loader: tt.DataLoader) -> float:
    start = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - start


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (50_000, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 10, 50_000)
    rows = []
    for name, transform in (("no transform (overhead-bound)", None), ("crop+flip+normalize", augmentation())):
        loaders = {
            flag: tt.DataLoader(
                tt.TensorDataset(x, y),
                batch_size=256,
                shuffle=True,
                seed=0,
                batch_transform=transform,
                stats=flag,
            )
            for flag in (True, False)
        }
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(8):
            for flag, loader in loaders.items():
                times[flag].append(epoch_seconds(loader))
        on, off = statistics.median(times[True][1:]), statistics.median(times[False][1:])
        rows.append((name, f"{50_000 / off:,.0f}", f"{50_000 / on:,.0f}", f"{100 * (on - off) / off:+.2f}%"))
    print_table(rows, ("workload (0 workers, batch 256)", "images/s stats off", "images/s stats on", "cost"))


if __name__ == "__main__":
    main()

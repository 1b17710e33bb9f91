"""The CIFAR augmentation epoch in every loader configuration, interleaved in one process.

On a shared machine the same configuration run in two processes one after the other differs by
10-30%, which is more than most changes being judged. This script builds the data once and runs
the configurations in turns (the order reversed every other round), three epochs each per round,
and prints each configuration's median images/s with its range and ratio to in-process loading.

50,000 x 3 x 32 x 32 uint8 (--size), batch 256, shuffled, pad-4 crop + flip + normalize.

Usage: python benchmarks/bench_modes.py [--rounds 4] [--size 50000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import tinytorch as tt
from tinytorch.analysis.sources import augmentation

CONFIGS: dict[str, dict[str, Any]] = {
    "0 workers": {},
    "2 thread workers": {"num_workers": 2, "worker_type": "thread"},
    "2 process workers": {"num_workers": 2, "worker_type": "process"},
    "2 thread workers, persistent": {"num_workers": 2, "worker_type": "thread", "persistent_workers": True},
    "2 process workers, persistent": {"num_workers": 2, "worker_type": "process", "persistent_workers": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--size", type=int, default=50_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.size, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, args.size)
    dataset = tt.TensorDataset(images, labels)
    rates: dict[str, list[float]] = {name: [] for name in CONFIGS}
    for r in range(args.rounds):
        names = list(CONFIGS) if r % 2 == 0 else list(CONFIGS)[::-1]
        for name in names:
            with tt.DataLoader(
                dataset, batch_size=256, shuffle=True, seed=0, batch_transform=augmentation(), **CONFIGS[name]
            ) as loader:
                for _ in range(3):
                    start = time.perf_counter()
                    count = sum(len(x) for x, _ in loader)
                    rates[name].append(count / (time.perf_counter() - start))
    sys.path.insert(0, str(Path(__file__).parent))
    from common import print_table

    base = statistics.median(rates["0 workers"])
    rows = [
        (
            name,
            f"{statistics.median(values):,.0f}",
            f"{min(values):,.0f}-{max(values):,.0f}",
            f"{statistics.median(values) / base:.2f}x",
        )
        for name, values in rates.items()
    ]
    print(f"{args.size} images, batch 256, {args.rounds} rounds x 3 epochs per configuration, interleaved")
    print_table(rows, ("configuration", "images/s (median)", "range", "vs 0 workers"))


if __name__ == "__main__":
    main()

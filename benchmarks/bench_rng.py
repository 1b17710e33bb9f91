"""What seeding the global generators per batch costs (issue 13 item 1).

Where user code can run in the batch path, every batch is made with numpy's, Python's and
torch's CPU generator seeded from (seed, epoch, batch index) (``seed_global_rngs``); in the
loading process (``num_workers=0``) the user's state is also saved when an epoch starts and
restored when it ends (``borrow_global_rngs`` / ``return_global_rngs``, once per epoch). A
pipeline of the library's own objects skips both. This prints the cost of each, with and without torch imported, and the in-process
loader overhead per batch for a dataset of ours and the same dataset subclassed (user code:
seeded), interleaved, medians.

Usage: python benchmarks/bench_rng.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import numpy as np

CODE = """
import sys, timeit
if {torch}:
    import torch
from tinytorch.data.seeding import borrow_global_rngs, return_global_rngs, seed_global_rngs

def borrowed():
    return_global_rngs(borrow_global_rngs())

n = 20000
best = lambda stmt: min(timeit.repeat(stmt, number=n, repeat=7)) / n * 1e6
print(best(lambda: seed_global_rngs(0, 1, 2)), best(borrowed))
"""


def costs(torch: bool) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", CODE.format(torch=torch)], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    for torch in (False, True):
        seed_us, seeded_us = costs(torch)
        print(
            f"torch {'imported' if torch else 'not imported'}: seed_global_rngs {seed_us:.1f} us per batch, "
            f"save + restore the user's state (num_workers=0) {seeded_us:.1f} us per epoch"
        )

    import tinytorch as tt

    class Yours(tt.TensorDataset):  # a subclass counts as user code: its batches are seeded
        pass

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50_000, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, 50_000)
    loaders = {
        "TensorDataset (library only: not seeded)": tt.DataLoader(
            tt.TensorDataset(images, labels), batch_size=256, shuffle=True, seed=0
        ),
        "subclass of TensorDataset (seeded per batch)": tt.DataLoader(
            Yours(images, labels), batch_size=256, shuffle=True, seed=0
        ),
    }
    per_batch: dict[str, list[float]] = {name: [] for name in loaders}
    for r in range(args.rounds):
        for name in list(loaders) if r % 2 == 0 else list(loaders)[::-1]:
            start = time.perf_counter()
            batches = sum(1 for _ in loaders[name])
            per_batch[name].append((time.perf_counter() - start) / batches * 1e6)
    base = statistics.median(per_batch[next(iter(loaders))])
    for name, values in per_batch.items():
        median = statistics.median(values)
        print(f"{name:<48} {median:7.1f} us per batch (+{median - base:.1f})")


if __name__ == "__main__":
    main()

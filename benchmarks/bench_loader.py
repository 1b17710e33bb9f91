"""Loader overhead: iterate 50,000 CIFAR-shaped uint8 images + int64 labels, batch 256, shuffled.

Compares, in the same run:
  * tinytorch DataLoader over TensorDataset (one fancy-index per batch),
  * torch.utils.data.DataLoader over torch's TensorDataset of the same arrays (0 workers),
  * a bare numpy loop that only gathers the rows (np.take) with the same permutation (the limit).

Usage: python benchmarks/bench_loader.py [--epochs 5]
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Iterator

import numpy as np

import tinytorch as tt
from common import print_table, time_epochs

N, BATCH = 50_000, 256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(N, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, size=N, dtype=np.int64)

    ours = tt.DataLoader(tt.TensorDataset(images, labels), batch_size=BATCH, shuffle=True, seed=0)
    order = tt.RandomSampler(range(N), seed=0).indices(0)

    def bare() -> Iterator[object]:
        # Yields each batch and drops it, as a training loop does (a list of all batches would
        # measure page faults of 150 MB of fresh memory instead).
        for start in range(0, N, BATCH):
            idx = order[start : start + BATCH]
            yield np.take(images, idx, axis=0), np.take(labels, idx, axis=0)

    results = {
        "bare numpy gather (np.take)": time_epochs(bare, args.epochs),
        "tinytorch DataLoader": time_epochs(lambda: ours, args.epochs),
    }
    try:
        import torch
        from torch.utils.data import DataLoader, TensorDataset

        torch_loader = DataLoader(
            TensorDataset(torch.from_numpy(images), torch.from_numpy(labels)),
            batch_size=BATCH,
            shuffle=True,
        )
        results["torch DataLoader (0 workers)"] = time_epochs(lambda: torch_loader, args.epochs)
    except ImportError:
        print("torch is not installed: skipping the torch comparison (pip install torch==2.13.0)")

    ours_rate = results["tinytorch DataLoader"][1] / results["tinytorch DataLoader"][0]
    rows = []
    for name, (seconds, batches) in results.items():
        rate = batches / seconds
        rows.append((name, f"{seconds * 1000:.1f}", f"{rate:,.0f}", f"{ours_rate / rate:.2f}x"))
    print(
        f"{platform.machine()}, {N} images 3x32x32 uint8, batch {BATCH}, shuffled, "
        f"median of {args.epochs} epochs"
    )
    print_table(rows, ("pipeline", "ms/epoch", "batches/s", "tinytorch vs this"))


if __name__ == "__main__":
    main()

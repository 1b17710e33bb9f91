"""Parallel loading against torch.utils.data, in the same run (issue #5's measurements).

  (a) CPU-heavy per-sample dataset (numpy augmentation per sample, in Python), 0/1/2 workers
  (b) time to first batch with 2 process workers
  (c) plain iteration overhead: a dataset of ints, batch 256, 0 and 2 workers
  (d) transport of large batches (256 x 3 x 224 x 224 uint8) from 2 workers
  (e) worker memory (PSS, summed over workers) over 20 epochs for a dataset of Python objects

Ours and torch's loaders take turns (epoch by epoch, start by start) and each figure is a
median, because this shared machine's speed drifts by more than some of the differences.

Usage: python benchmarks/bench_workers.py [--only a,b,c,d,e]
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any

import numpy as np

import tinytorch as tt
from common import in_turns, print_table

MEAN = np.array([0.49, 0.48, 0.45], dtype=np.float32)[:, None, None]
STD = np.array([0.25, 0.24, 0.26], dtype=np.float32)[:, None, None]


class Augmented:
    """Per-sample numpy augmentation, the way most hand-written datasets do it."""

    def __init__(self, n: int = 20_000) -> None:
        self.images = np.random.default_rng(0).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        rng = np.random.default_rng(i)
        padded = np.pad(self.images[i], ((0, 0), (4, 4), (4, 4)))
        top, left = rng.integers(0, 9, 2)
        crop = padded[:, top : top + 32, left : left + 32]
        if rng.random() < 0.5:
            crop = crop[:, :, ::-1]
        return (crop.astype(np.float32) / 255 - MEAN) / STD, i % 10


class Ints:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class Large:
    def __init__(self, n: int = 1024) -> None:
        self.images = np.random.default_rng(0).integers(0, 256, (n, 3, 224, 224), dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.images[i]


class Strings:
    """Holds Python objects: the copy-on-read case (each access touches refcounts)."""

    def __init__(self, n: int = 1_000_000, packed: bool = False) -> None:
        items = [f"sample-{i:09d}-" + "x" * 40 for i in range(n)]
        self.items: Any = tt.PackedSequence(items) if packed else items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> int:
        return len(self.items[i])


def tt_dataset(base: Any) -> tt.Dataset:
    class Wrapped(tt.Dataset):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return len(base)

        def __getitem__(self, i: int) -> Any:
            return base[i]

    return Wrapped()


def rates(loaders: dict[str, Any], rounds: int, unit: int) -> dict[str, float]:
    """Items per second of each loader: median of ``rounds`` epochs, the loaders taking turns."""
    counts = {name: sum(1 for _ in loader) for name, loader in loaders.items()}  # warm-up epoch

    def epoch_seconds(loader: Any) -> float:
        start = time.perf_counter()
        for _ in loader:
            pass
        return time.perf_counter() - start

    seconds = in_turns(
        {name: lambda loader=loader: epoch_seconds(loader) for name, loader in loaders.items()}, rounds
    )
    return {name: counts[name] * unit / seconds[name] for name in loaders}


def first_batch_seconds(makers: dict[str, Any], repeats: int = 31) -> dict[str, float]:
    """Median seconds from ``iter(loader)`` to the first batch, the makers taking turns."""

    def first_batch(make: Any) -> float:
        loader = make()
        start = time.perf_counter()
        it = iter(loader)
        next(it)
        seconds = time.perf_counter() - start
        del it, loader
        gc.collect()
        return seconds

    return in_turns({name: lambda make=make: first_batch(make) for name, make in makers.items()}, repeats)


def pss_of(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total / (1 << 20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default="a,b,c,d,e")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    import torch
    from torch.utils.data import DataLoader as TorchLoader

    torch.set_num_threads(1)
    rows: list[tuple[str, ...]] = []

    if "a" in parts:
        base = Augmented()
        for w in (0, 1, 2):
            got = rates(
                {
                    "ours": tt.DataLoader(
                        tt_dataset(base), batch_size=256, num_workers=w, persistent_workers=w > 0
                    ),
                    "torch": TorchLoader(base, batch_size=256, num_workers=w, persistent_workers=w > 0),
                },
                5,
                256,
            )
            rows.append(
                (
                    f"(a) per-sample numpy aug, {w} workers",
                    f"{got['ours']:,.0f} img/s",
                    f"{got['torch']:,.0f} img/s",
                    f"{got['ours'] / got['torch']:.2f}x",
                )
            )
    if "b" in parts:
        base = Augmented()
        got = first_batch_seconds(
            {
                "ours": lambda: tt.DataLoader(tt_dataset(base), batch_size=256, num_workers=2),
                "torch": lambda: TorchLoader(base, batch_size=256, num_workers=2),
            }
        )
        rows.append(
            (
                "(b) time to first batch, 2 process workers",
                f"{got['ours'] * 1000:.1f} ms",
                f"{got['torch'] * 1000:.1f} ms",
                f"{got['ours'] / got['torch']:.2f}x the time",
            )
        )
        # The same arrays in each library's own TensorDataset (ours reads a batch with one take).
        from torch.utils.data import TensorDataset as TorchTensorDataset

        labels = np.arange(len(base.images))
        got = first_batch_seconds(
            {
                "ours": lambda: tt.DataLoader(
                    tt.TensorDataset(base.images, labels), batch_size=256, num_workers=2
                ),
                "torch": lambda: TorchLoader(
                    TorchTensorDataset(torch.from_numpy(base.images), torch.from_numpy(labels)),
                    batch_size=256,
                    num_workers=2,
                ),
            }
        )
        rows.append(
            (
                "(b) same, arrays in each library's TensorDataset",
                f"{got['ours'] * 1000:.1f} ms",
                f"{got['torch'] * 1000:.1f} ms",
                f"{got['ours'] / got['torch']:.2f}x the time",
            )
        )
    if "c" in parts:
        base = Ints(256 * 400)
        for w in (0, 2):
            got = rates(
                {
                    "ours": tt.DataLoader(
                        tt_dataset(base), batch_size=256, num_workers=w, persistent_workers=w > 0
                    ),
                    "torch": TorchLoader(base, batch_size=256, num_workers=w, persistent_workers=w > 0),
                },
                5,
                1,
            )
            rows.append(
                (
                    f"(c) dataset of ints, batch 256, {w} workers",
                    f"{got['ours']:,.0f} batches/s",
                    f"{got['torch']:,.0f} batches/s",
                    f"{got['ours'] / got['torch']:.2f}x",
                )
            )
    if "d" in parts:
        base = Large()
        got = rates(
            {
                "ours": tt.DataLoader(
                    tt.TensorDataset(base.images), batch_size=256, num_workers=2, persistent_workers=True
                ),
                "torch": TorchLoader(base, batch_size=256, num_workers=2, persistent_workers=True),
            },
            5,
            1,
        )
        rows.append(
            (
                "(d) 256x3x224x224 uint8 batches, 2 workers",
                f"{got['ours']:.1f} batches/s",
                f"{got['torch']:.1f} batches/s",
                f"{got['ours'] / got['torch']:.2f}x",
            )
        )
    if "e" in parts:
        for packed in (False, True):
            base = Strings(packed=packed)
            loader = tt.DataLoader(tt_dataset(base), batch_size=4096, num_workers=2, persistent_workers=True)
            torch_loader = TorchLoader(base, batch_size=4096, num_workers=2, persistent_workers=True)
            marks: dict[str, list[float]] = {"ours": [], "torch": []}
            for name, ld in (("ours", loader), ("torch", torch_loader)):
                for epoch in range(20):
                    for _ in ld:
                        pass
                    if epoch in (0, 19):
                        pids = ld.worker_pids if name == "ours" else [w.pid for w in ld._iterator._workers]
                        marks[name].append(pss_of(pids))
            label = "PackedSequence" if packed else "list of str"
            rows.append(
                (
                    f"(e) worker PSS epoch 1 -> 20, {label}",
                    f"{marks['ours'][0]:.0f} -> {marks['ours'][1]:.0f} MB",
                    f"{marks['torch'][0]:.0f} -> {marks['torch'][1]:.0f} MB",
                    "",
                )
            )
            loader.close()
            del torch_loader
            gc.collect()
    print_table(rows, ("measurement", "tinytorch", "torch.utils.data", "ratio"))


if __name__ == "__main__":
    main()

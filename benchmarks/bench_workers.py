"""Parallel loading against torch.utils.data, in the same run (issue #5's measurements).

  (a) CPU-heavy per-sample dataset (numpy augmentation per sample, in Python), 0/1/2 workers
  (b) time to first batch with 2 process workers
  (c) plain iteration overhead: a dataset of ints, batch 256, 0 and 2 workers
  (d) transport of large batches (256 x 3 x 224 x 224 uint8) from 2 workers
  (e) worker memory (PSS, summed over workers) over 20 epochs for a dataset of Python objects

Usage: python benchmarks/bench_workers.py [--only a,b,c,d,e]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from typing import Any

import numpy as np

import tinytorch as tt
from common import print_table

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


def rate(loader: Any, epochs: int, unit: int) -> float:
    for _ in loader:  # warm-up epoch (starts persistent workers)
        pass
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        count = sum(1 for _ in loader)
        times.append(time.perf_counter() - start)
    return count * unit / statistics.median(times)


def first_batch_seconds(make: Any, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        loader = make()
        start = time.perf_counter()
        it = iter(loader)
        next(it)
        times.append(time.perf_counter() - start)
        del it, loader
        gc.collect()
    return statistics.median(times)


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
            ours = rate(
                tt.DataLoader(tt_dataset(base), batch_size=256, num_workers=w, persistent_workers=w > 0),
                3,
                256,
            )
            theirs = rate(TorchLoader(base, batch_size=256, num_workers=w, persistent_workers=w > 0), 3, 256)
            rows.append(
                (
                    f"(a) per-sample numpy aug, {w} workers",
                    f"{ours:,.0f} img/s",
                    f"{theirs:,.0f} img/s",
                    f"{ours / theirs:.2f}x",
                )
            )
    if "b" in parts:
        base = Augmented()
        ours = first_batch_seconds(lambda: tt.DataLoader(tt_dataset(base), batch_size=256, num_workers=2))
        theirs = first_batch_seconds(lambda: TorchLoader(base, batch_size=256, num_workers=2))
        rows.append(
            (
                "(b) time to first batch, 2 process workers",
                f"{ours * 1000:.0f} ms",
                f"{theirs * 1000:.0f} ms",
                f"{ours / theirs:.2f}x the time",
            )
        )
        # The same arrays in each library's own TensorDataset (ours reads a batch with one take).
        from torch.utils.data import TensorDataset as TorchTensorDataset

        labels = np.arange(len(base.images))
        ours = first_batch_seconds(
            lambda: tt.DataLoader(tt.TensorDataset(base.images, labels), batch_size=256, num_workers=2)
        )
        theirs = first_batch_seconds(
            lambda: TorchLoader(
                TorchTensorDataset(torch.from_numpy(base.images), torch.from_numpy(labels)),
                batch_size=256,
                num_workers=2,
            )
        )
        rows.append(
            (
                "(b) same, arrays in each library's TensorDataset",
                f"{ours * 1000:.0f} ms",
                f"{theirs * 1000:.0f} ms",
                f"{ours / theirs:.2f}x the time",
            )
        )
    if "c" in parts:
        base = Ints(256 * 400)
        for w in (0, 2):
            ours = rate(
                tt.DataLoader(tt_dataset(base), batch_size=256, num_workers=w, persistent_workers=w > 0),
                3,
                1,
            )
            theirs = rate(TorchLoader(base, batch_size=256, num_workers=w, persistent_workers=w > 0), 3, 1)
            rows.append(
                (
                    f"(c) dataset of ints, batch 256, {w} workers",
                    f"{ours:,.0f} batches/s",
                    f"{theirs:,.0f} batches/s",
                    f"{ours / theirs:.2f}x",
                )
            )
    if "d" in parts:
        base = Large()
        ours_ds = tt.TensorDataset(base.images)
        ours = rate(tt.DataLoader(ours_ds, batch_size=256, num_workers=2, persistent_workers=True), 3, 1)
        theirs = rate(TorchLoader(base, batch_size=256, num_workers=2, persistent_workers=True), 3, 1)
        rows.append(
            (
                "(d) 256x3x224x224 uint8 batches, 2 workers",
                f"{ours:.1f} batches/s",
                f"{theirs:.1f} batches/s",
                f"{ours / theirs:.2f}x",
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

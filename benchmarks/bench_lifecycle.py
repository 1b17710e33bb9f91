"""Nothing leaked, nothing grows: create/iterate/break cycles and a long soak (issue 16).

Cycles: for every worker setup (thread / process; per-epoch / persistent; fork / spawn), build a
loader, take a few batches (or a whole epoch), then ``break``, raise, ``close()`` or drop it, many
times. After each setup's cycles it counts what is left: child processes, threads, open file
descriptors, ``/dev/shm`` entries, and the loading process's RSS. Soak: persistent process
workers over many epochs of the CIFAR augmentation pipeline; the loading process's and each
worker's private memory per epoch must stay flat.

Usage: python benchmarks/bench_lifecycle.py [--cycles 120] [--soak-epochs 100]
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import os
import threading
import time

import numpy as np

import tinytorch as tt
from tinytorch.analysis.sources import augmentation
from tinytorch.data.workers.capacity import private_memory


class Squares(tt.Dataset):
    def __init__(self, n: int = 256) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return np.full((3, 32, 32), i % 251, dtype=np.uint8), i


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def shm_entries() -> int:
    try:
        return len(os.listdir("/dev/shm"))
    except OSError:
        return 0


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def settle() -> None:
    gc.collect()
    deadline = time.monotonic() + 5
    while mp.active_children() and time.monotonic() < deadline:
        time.sleep(0.02)


def cycles(n: int) -> list[tuple[str, int, int, int, int, int, float]]:
    setups = {
        "thread": {"worker_type": "thread"},
        "thread, persistent": {"worker_type": "thread", "persistent_workers": True},
        "process (fork)": {},
        "process (fork), persistent": {"persistent_workers": True},
        "process (spawn)": {"multiprocessing_context": "spawn"},
    }
    ways = ("break", "exhaust", "raise", "close", "drop")
    rows = []
    for name, kwargs in setups.items():
        count = n if "spawn" not in name else max(5, n // 10)
        settle()
        before = (threading.active_count(), open_fds(), shm_entries(), rss())
        start = time.perf_counter()
        for cycle in range(count):
            loader = tt.DataLoader(Squares(), batch_size=32, num_workers=2, seed=cycle, **kwargs)
            way = ways[cycle % len(ways)]
            try:
                for k, _ in enumerate(loader):
                    if way != "exhaust" and k == cycle % 3:
                        if way == "raise":
                            raise KeyError("consumer failed")
                        break
            except KeyError:
                pass
            if way == "close":
                loader.close()
            del loader
        settle()
        seconds = time.perf_counter() - start
        after = (threading.active_count(), open_fds(), shm_entries(), rss())
        rows.append(
            (
                name,
                count,
                len(mp.active_children()),
                after[0] - before[0],
                after[1] - before[1],
                after[2] - before[2],
                (after[3] - before[3]) / (1 << 20),
            )
        )
        print(
            f"{name:<30} {count:5d} cycles in {seconds:6.1f} s: children left {rows[-1][2]}, threads "
            f"{rows[-1][3]:+d}, fds {rows[-1][4]:+d}, /dev/shm {rows[-1][5]:+d}, RSS {rows[-1][6]:+.1f} MB",
            flush=True,
        )
    return rows


def soak(epochs: int) -> None:
    rng = np.random.default_rng(0)
    data = tt.TensorDataset(
        rng.integers(0, 256, (20_000, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, 20_000)
    )
    loader = tt.DataLoader(
        data,
        batch_size=256,
        shuffle=True,
        seed=0,
        batch_transform=augmentation(),
        num_workers=2,
        persistent_workers=True,
    )
    mine, workers = [], []
    for epoch in range(epochs):
        for _ in loader:
            pass
        stats = loader.stats()
        mine.append((private_memory() or 0) / (1 << 20))
        workers.append(max(w.private_bytes for w in stats.per_worker.values()) / (1 << 20))
        if epoch % 10 == 0 or epoch == epochs - 1:
            print(
                f"epoch {epoch:3d}: loading process {mine[-1]:7.1f} MB private, workers {workers[-1]:6.1f} MB",
                flush=True,
            )
    loader.close()
    tenth = max(1, epochs // 10)
    print(
        f"soak, {epochs} epochs: loading process {np.median(mine[:tenth]):.1f} -> {np.median(mine[-tenth:]):.1f} MB "
        f"(first and last tenth, medians), workers {np.median(workers[:tenth]):.1f} -> {np.median(workers[-tenth:]):.1f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=120)
    parser.add_argument("--soak-epochs", type=int, default=100)
    args = parser.parse_args()
    rows = cycles(args.cycles)
    total = sum(r[1] for r in rows)
    leaks = sum(r[2] for r in rows) + sum(max(0, r[3]) for r in rows) + sum(max(0, r[5]) for r in rows)
    print(f"{total} create/iterate/stop cycles: {leaks} leftover processes, threads or /dev/shm entries")
    soak(args.soak_epochs)


if __name__ == "__main__":
    main()

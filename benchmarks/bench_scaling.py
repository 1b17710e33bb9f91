"""Does the CIFAR pipeline scale with workers? Every configuration against its ceiling (issue 19).

50,000 x 3 x 32 x 32 uint8 (--size, generated), batch 256, shuffled, pad-4 RandomCrop +
RandomHorizontalFlip + Normalize to float32 NCHW (``tinytorch.analysis.sources.augmentation``).
Images/s of, interleaved in one process (every variant one epoch per round in turn, the order
reversed every other round; medians):

* tinytorch with 0, 1 and 2 workers (thread, process; 2 also persistent), for each transform
  backend (``numba``: the compiled kernel of the ``fast`` extra; ``numpy``: the fallback);
* the ceiling: the same batches made by one and by two bare processes (forked once, no loader:
  ``np.take`` of the batch + the same transform from the same generator, each process every
  second batch, the parent waiting);
* the float32 write bound: copying the output bytes once per batch;

and, in subprocesses of ``--peer-python`` (a venv with torch, torchvision and grain), run
between the rounds: torchvision + PIL with 2 workers, and Grain's configurations (per-sample
``random_map`` and a batch-level numpy transform, in-process and with 2 ``mp_prefetch``
workers); each peer row is the median of its runs. With ``--growth``, also the time per image
of the in-process loader at 10,000 vs 1,000,000 samples.

Usage:
    PYTHONPATH=src:benchmarks python benchmarks/bench_scaling.py [--rounds 5] [--growth]
        [--peer-python /work/venv-bench/bin/python] [--timeline docs/img/timeline.png]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

BATCH = 256
HERE = Path(__file__).resolve().parent


# ---- tinytorch and its ceiling ---------------------------------------------------------------


def augmentation(backend: str) -> Any:
    from tinytorch.analysis.sources import augmentation as standard

    aug = standard()
    aug.steps[0].backend = backend
    return aug


class BareProcesses:
    """``n`` forked processes that make the epoch's batches without a loader (each every n-th)."""

    def __init__(self, n: int, images: np.ndarray, labels: np.ndarray, backend: str) -> None:
        self.conns, self.procs = [], []
        ctx = mp.get_context("fork")
        for w in range(n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_bare_main, args=(child, w, n, images, labels, backend), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    def epoch(self, epoch: int) -> int:
        for conn in self.conns:
            conn.send(epoch)
        return sum(conn.recv() for conn in self.conns)

    def close(self) -> None:
        for conn in self.conns:
            conn.send(None)
        for proc in self.procs:
            proc.join()


def _bare_main(conn: Any, w: int, n: int, images: np.ndarray, labels: np.ndarray, backend: str) -> None:
    from tinytorch.data.seeding import Stream, derive_rng

    aug = augmentation(backend)
    batches = -(-len(images) // BATCH)
    while (epoch := conn.recv()) is not None:
        order = derive_rng(0, Stream.SHUFFLE, epoch).permutation(len(images))
        count = 0
        for k in range(w, batches, n):
            idx = order[k * BATCH : (k + 1) * BATCH]
            x, _ = aug(
                [np.take(images, idx, axis=0), np.take(labels, idx)], derive_rng(0, Stream.BATCH, epoch, k)
            )
            count += len(x)
        conn.send(count)


def write_bound(images: np.ndarray) -> Callable[[], int]:
    """Copy float32 output bytes once per batch (source cycles over 8,192 images)."""
    source = images[:8192].astype(np.float32)

    def epoch() -> int:
        n = len(images)
        for start in range(0, n, BATCH):
            at = start % (len(source) - BATCH)
            out = np.empty((min(BATCH, n - start), 3, 32, 32), np.float32)
            np.copyto(out, source[at : at + len(out)])
        return n

    return epoch


# ---- peers (run in --peer-python) -------------------------------------------------------------

MEAN = np.array([125.3, 123.0, 113.9]) / 255
STD = np.array([63.0, 62.1, 66.7]) / 255


def peer_main(which: str, size: int, epochs: int) -> None:
    """Print ``{name: [images/s per epoch]}`` as JSON for one peer family."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (size, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, size)
    out: dict[str, list[float]] = {}

    def timed(name: str, make_epoch: Callable[[], Any]) -> None:
        out[name] = []
        for _ in range(epochs):
            start = time.perf_counter()
            count = sum(len(b[0]) for b in make_epoch())
            out[name].append(count / (time.perf_counter() - start))

    if which == "torchvision":
        import torch
        import torchvision.transforms as T
        from PIL import Image
        from torch.utils.data import DataLoader, Dataset

        torch.set_num_threads(1)
        hwc = np.ascontiguousarray(images.transpose(0, 2, 3, 1))
        transform = T.Compose(
            [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)]
        )

        class CIFARStyle(Dataset):  # type: ignore[type-arg]
            def __len__(self) -> int:
                return size

            def __getitem__(self, i: int) -> tuple[Any, int]:
                return transform(Image.fromarray(hwc[i])), int(labels[i])

        loader = DataLoader(CIFARStyle(), batch_size=BATCH, shuffle=True, num_workers=2)
        timed("torchvision + PIL, 2 workers", lambda: loader)
    elif which == "grain":
        import grain

        mean = (MEAN * 255).astype(np.float32)[:, None, None]
        std = (STD * 255).astype(np.float32)[:, None, None]

        def sample_aug(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
            top, left = rng.integers(0, 9, 2)
            crop = np.pad(x, ((0, 0), (4, 4), (4, 4)))[:, top : top + 32, left : left + 32]
            if rng.random() < 0.5:
                crop = crop[:, :, ::-1]
            return (crop.astype(np.float32) - mean) / std

        def batch_aug(batch: tuple[np.ndarray, np.ndarray], rng: np.random.Generator) -> Any:
            x, y = batch
            n = len(x)
            padded = np.pad(x, ((0, 0), (0, 0), (4, 4), (4, 4)))
            top, left = rng.integers(0, 9, n), rng.integers(0, 9, n)
            rows = top[:, None] + np.arange(32)
            cols = left[:, None] + np.arange(32)
            flip = rng.random(n) < 0.5
            cols[flip] = cols[flip, ::-1]
            crop = padded[np.arange(n)[:, None, None, None], np.arange(3)[None, :, None, None],
                          rows[:, None, :, None], cols[:, None, None, :]]  # fmt: skip
            return (crop.astype(np.float32) - mean) / std, y

        pairs = grain.MapDataset.source(range(size)).map(lambda i: (images[i], labels[i]))
        per_sample = (
            pairs.shuffle(seed=0)
            .random_map(lambda p, rng: (sample_aug(p[0], rng), p[1]), seed=1)
            .batch(BATCH)
        )
        batch_level = pairs.shuffle(seed=0).batch(BATCH).random_map(batch_aug, seed=1)
        options = grain.MultiprocessingOptions(num_workers=2)
        for label, ds in (("per-sample random_map", per_sample), ("batch-level transform", batch_level)):
            timed(f"Grain, {label}, in-process", lambda ds=ds: ds.to_iter_dataset())
            timed(f"Grain, {label}, 2 workers", lambda ds=ds: ds.to_iter_dataset().mp_prefetch(options))
    print(json.dumps(out))


def run_peer(python: str, which: str, size: int, epochs: int) -> dict[str, list[float]]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [
            python,
            str(Path(__file__).resolve()),
            "--peer",
            which,
            "--size",
            str(size),
            "--epochs",
            str(epochs),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if done.returncode != 0:
        print(f"peer {which} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        return {}
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# ---- the run ---------------------------------------------------------------------------------

CONFIGS: dict[str, dict[str, Any]] = {
    "0 workers": {},
    "1 thread worker": {"num_workers": 1, "worker_type": "thread"},
    "1 process worker": {"num_workers": 1, "worker_type": "process"},
    "2 thread workers": {"num_workers": 2, "worker_type": "thread"},
    "2 process workers": {"num_workers": 2, "worker_type": "process"},
    "2 thread workers, persistent": {"num_workers": 2, "worker_type": "thread", "persistent_workers": True},
    "2 process workers, persistent": {"num_workers": 2, "worker_type": "process", "persistent_workers": True},
}


def growth(backend: str, rounds: int) -> dict[str, float]:
    """Median microseconds per image of the in-process loader at 10k and 1M samples, and of the
    bare gather alone (``np.take`` of 256 random rows into a reused array: what a larger dataset
    costs the memory system, with no loader), the reference for the loader's growth."""
    import tinytorch as tt

    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, (10_000, 3, 32, 32), dtype=np.uint8)
    large = np.resize(small, (1_000_000, 3, 32, 32))  # values do not matter; access pattern does
    result: dict[str, list[float]] = {"10k": [], "1M": [], "gather 10k": [], "gather 1M": []}
    loaders = {
        name: tt.DataLoader(
            tt.TensorDataset(x, np.arange(len(x))),
            batch_size=BATCH,
            shuffle=True,
            seed=0,
            batch_transform=augmentation(backend),
        )
        for name, x in (("10k", small), ("1M", large))
    }
    for r in range(rounds):
        for name in ("10k", "1M") if r % 2 == 0 else ("1M", "10k"):
            epochs = 100 if name == "10k" else 1
            start = time.perf_counter()
            count = sum(len(x) for _ in range(epochs) for x, _ in loaders[name])
            result[name].append(1e6 * (time.perf_counter() - start) / count)
        for name, x in (("10k", small), ("1M", large)):
            picks = np.random.default_rng(r).integers(0, len(x), (2000, BATCH))
            out = np.empty((BATCH, *x.shape[1:]), x.dtype)
            start = time.perf_counter()
            for rows in picks:
                np.take(x, rows, axis=0, out=out)
            result[f"gather {name}"].append(1e6 * (time.perf_counter() - start) / picks.size)
    return {name: statistics.median(v) for name, v in result.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=50_000)
    parser.add_argument("--backends", default="numba,numpy")
    parser.add_argument("--configs", default=";".join(CONFIGS), help="names from CONFIGS, ';'-separated")
    parser.add_argument("--prefetch", default="", help="also 2 persistent workers at these prefetch_factors")
    parser.add_argument("--peer-python", default="", help="python with torch, torchvision, grain")
    parser.add_argument("--peer-size", type=int, default=20_000)
    parser.add_argument("--growth", action="store_true")
    parser.add_argument("--timeline", default="", help="also draw the per-batch timeline to this PNG")
    parser.add_argument("--peer", default="", help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        peer_main(args.peer, args.size, args.epochs)
        return

    import tinytorch as tt
    from common import print_table
    from tinytorch.data.transforms.kernels import numba_available

    backends = [b for b in args.backends.split(",") if b != "numba" or numba_available()]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.size, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, args.size)
    dataset = tt.TensorDataset(images, labels)
    measures: dict[str, Callable[[], float]] = {}
    closers: list[Callable[[], None]] = []
    configs = {name: CONFIGS[name] for name in args.configs.split(";")}
    for factor in filter(None, args.prefetch.split(",")):
        for kind in ("thread", "process"):
            configs[f"2 {kind} workers, persistent, prefetch_factor={factor}"] = {
                "num_workers": 2, "worker_type": kind, "persistent_workers": True, "prefetch_factor": int(factor),
            }  # fmt: skip

    def rate(count: Callable[[], int]) -> float:
        start = time.perf_counter()
        n = count()
        return n / (time.perf_counter() - start)

    for backend in backends:
        for name, kw in configs.items():
            loader = tt.DataLoader(
                dataset, batch_size=BATCH, shuffle=True, seed=0, batch_transform=augmentation(backend), **kw
            )
            closers.append(loader.close)
            measures[f"[{backend}] {name}"] = lambda ld=loader: rate(lambda: sum(len(x) for x, _ in ld))
        for n in (1, 2):
            bare = BareProcesses(n, images, labels, backend)
            closers.append(bare.close)
            epoch = iter(range(10**9))
            measures[f"[{backend}] bare, {n} process{'es' * (n > 1)}"] = lambda b=bare, e=epoch: rate(
                lambda: b.epoch(next(e))
            )
    bound = write_bound(images)
    measures["float32 write bound"] = lambda: rate(bound)

    results: dict[str, list[float]] = {name: [] for name in measures}
    peers: dict[str, list[float]] = {}
    load = [os.getloadavg()[0]]
    for m in measures.values():  # warm-up: workers started, kernels and caches warm
        m()
    for r in range(args.rounds):
        for name in list(measures) if r % 2 == 0 else list(measures)[::-1]:
            results[name].append(measures[name]())
        if args.peer_python and r < 3:
            for which in ("torchvision", "grain"):
                for key, values in run_peer(args.peer_python, which, args.peer_size, 1).items():
                    peers.setdefault(key, []).extend(values)
        load.append(os.getloadavg()[0])
    for close in closers:
        close()

    medians = {name: statistics.median(v) for name, v in {**results, **peers}.items()}
    print(
        f"{args.size:,} images, batch {BATCH}; medians of {args.rounds} interleaved rounds "
        f"(peers: {args.peer_size:,} images, one epoch per round); load average "
        f"{min(load):.1f}-{max(load):.1f} on {os.cpu_count()} cores"
    )
    rows = []
    for name, value in medians.items():
        backend = name[1:6] if name.startswith("[") else backends[0]
        ceiling = medians.get(f"[{backend}] bare, 2 processes", float("nan"))
        spread = (
            (min(results[name]), max(results[name]))
            if name in results
            else (min(peers[name]), max(peers[name]))
        )
        rows.append((name, f"{value:,.0f}", f"{spread[0]:,.0f}-{spread[1]:,.0f}", f"{value / ceiling:.2f}x"))
    print_table(rows, ("pipeline", "images/s", "range", "vs 2 bare processes (same backend)"))
    ours = {n: v for n, v in medians.items() if n.startswith("[") and "bare" not in n}
    best_name = max(ours, key=ours.__getitem__)
    best = ours[best_name]
    print(f"best tinytorch: {best_name} {best:,.0f} images/s")
    for backend in backends:
        ceiling = medians[f"[{backend}] bare, 2 processes"]
        for kind in ("thread", "process"):
            two = (
                medians[f"[{backend}] 2 {kind} workers, persistent"]
                if "2 thread workers, persistent" in configs
                else 0
            )
            print(
                f"[{backend}] 2 persistent {kind} workers / 2 bare processes: {two / ceiling:.2f}x (goal >= 0.9x)"
            )
    tv = medians.get("torchvision + PIL, 2 workers")
    if tv:
        print(f"best tinytorch / torchvision + PIL, 2 workers: {best / tv:.1f}x (goal >= 40x)")
    grain_rates = {n: v for n, v in medians.items() if n.startswith("Grain")}
    if grain_rates:
        g = max(grain_rates, key=grain_rates.__getitem__)
        print(f"best tinytorch / Grain's best ({g}): {best / grain_rates[g]:.1f}x (goal >= 10x)")
    print(f"best tinytorch / float32 write bound: {best / medians['float32 write bound']:.2f}")
    if args.growth:
        for backend in backends:
            g = growth(backend, 3)
            print(
                f"[{backend}] in-process us per image: 10k samples {g['10k']:.3f}, 1M samples {g['1M']:.3f} "
                f"-> {g['1M'] / g['10k']:.2f}x (goal <= 1.1x); the bare gather alone: "
                f"{g['gather 10k']:.3f} -> {g['gather 1M']:.3f} us (+{g['gather 1M'] - g['gather 10k']:.3f}), "
                f"the loader: +{g['1M'] - g['10k']:.3f}"
            )
    if args.timeline:
        import timeline

        got = timeline.timelines(
            images, labels, timeline.CONFIGS, transform=augmentation(backends[0]), epochs=3
        )
        drawn = [sorted(runs, key=lambda t: t.wall_ms)[len(runs) // 2] for runs in got.values()]
        timeline.plot(drawn, args.timeline, window_ms=25)
        for t in drawn:
            print(t.label, {k: round(v, 3) for k, v in t.summary().items()})


if __name__ == "__main__":
    main()

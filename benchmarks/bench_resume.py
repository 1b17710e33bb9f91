"""What mid-epoch resume costs (issue 15, "Measure"), against the ways a user could do it otherwise.

A CIFAR-sized epoch in memory (50,000 x 3 x 32 x 32 uint8 + int64 labels), batch 256, shuffled,
the standard augmentation (``tinytorch.analysis.sources.augmentation()``: pad-4 crop, flip,
normalize to float32) per batch; 196 batches an epoch. For resume points at 0% (a fresh start,
the reference), 10%, 50% and 90% of the epoch, with 0 and 2 process workers:

* **state**: the size of ``loader.state_dict()`` (bytes of JSON, and pickled for comparison);
* **state_dict()**: the cost of one call mid-epoch (median of 2,000 calls);
* **first batch after resume**, timed from ``load_state_dict`` to the first batch in hand:
  - tinytorch ``load_state_dict`` (the epoch is planned from the saved batch on; nothing before
    it is read);
  - tinytorch re-iterating from the epoch start and skipping the batches already seen (what a
    torch script without resume support does: every skipped batch goes through the pipeline);
  - torchdata's ``StatefulDataLoader`` (``load_state_dict``), when importable: the same arrays
    gathered once per batch (``__getitems__``) and the same augmentation in its ``collate_fn``.

All variants take turns, one measurement each per round (order reversed every other round);
medians over the rounds. Before timing, each resumed first batch is checked against the
uninterrupted run's batch (bytes for tinytorch, labels for torchdata).

Usage:
    python benchmarks/bench_resume.py [--rounds 9]

torchdata 0.11.0 (the last release, Feb 2025) runs with torch 2.13; it is not a dependency.
Install it beside the torch you have, without letting pip change torch::

    python -m venv --system-site-packages /work/venv-torchdata
    /work/venv-torchdata/bin/pip install torchdata==0.11.0 --no-deps
    PYTHONPATH=src /work/venv-torchdata/bin/python benchmarks/bench_resume.py
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import tinytorch as tt
from common import in_turns, print_table
from tinytorch.analysis.sources import augmentation

N, BATCH, SEED = 50_000, 256, 0
BATCHES = -(-N // BATCH)  # 196
POINTS = {"0%": 0, "10%": round(0.1 * BATCHES), "50%": round(0.5 * BATCHES), "90%": round(0.9 * BATCHES)}
WORKERS = (0, 2)


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (N, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, N).astype(np.int64)


# ---- tinytorch ------------------------------------------------------------------------------------


def ours(x: np.ndarray, y: np.ndarray, workers: int) -> tt.DataLoader[Any]:
    return tt.DataLoader(
        tt.TensorDataset(x, y),
        batch_size=BATCH,
        shuffle=True,
        seed=SEED,
        batch_transform=augmentation(),
        num_workers=workers,
    )


def our_state(x: np.ndarray, y: np.ndarray, k: int) -> dict[str, Any]:
    """The state of a loader that delivered ``k`` batches of epoch 0 (saved with 0 workers)."""
    loader = ours(x, y, 0)
    epoch = iter(loader)
    for _ in range(k):
        next(epoch)
    state = json.loads(json.dumps(loader.state_dict()))
    loader.close()
    return state


def our_resume(x: np.ndarray, y: np.ndarray, workers: int, state: dict[str, Any]) -> tuple[float, Any]:
    loader = ours(x, y, workers)
    start = time.perf_counter()
    loader.load_state_dict(state)
    epoch = iter(loader)
    batch = next(epoch)
    seconds = time.perf_counter() - start
    del epoch
    loader.close()
    return seconds, batch


def our_reiterate(x: np.ndarray, y: np.ndarray, workers: int, k: int) -> tuple[float, Any]:
    loader = ours(x, y, workers)
    start = time.perf_counter()
    epoch = iter(loader)
    for _ in range(k):
        next(epoch)  # skipped, but made: read, augmented, (with workers) sent
    batch = next(epoch)
    seconds = time.perf_counter() - start
    del epoch
    loader.close()
    return seconds, batch


# ---- torchdata ------------------------------------------------------------------------------------


class Batched:
    """A torch map-style dataset that gathers a batch at once (torch calls ``__getitems__``)."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.int64]:
        return self.x[i], self.y[i]

    def __getitems__(self, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        index = np.asarray(indices)
        return self.x[index], self.y[index]


class Augment:
    """``collate_fn``: the same augmentation as ours on the gathered batch; torch tensors out."""

    def __init__(self) -> None:
        self.augment = augmentation()

    def __call__(self, batch: tuple[np.ndarray, np.ndarray]) -> tuple[Any, Any]:
        import torch

        images = self.augment(batch[0], np.random.default_rng())
        return torch.from_numpy(images), torch.from_numpy(batch[1])


def theirs(x: np.ndarray, y: np.ndarray, workers: int) -> Any:
    import torch
    from torchdata.stateful_dataloader import StatefulDataLoader

    return StatefulDataLoader(
        Batched(x, y),  # type: ignore[arg-type]
        batch_size=BATCH,
        shuffle=True,
        num_workers=workers,
        collate_fn=Augment(),
        generator=torch.Generator().manual_seed(SEED),
    )


def their_state(x: np.ndarray, y: np.ndarray, workers: int, k: int) -> dict[str, Any]:
    """torchdata's state after ``k`` batches; its multi-worker state differs from its in-process one."""
    loader = theirs(x, y, workers)
    epoch = iter(loader)
    for _ in range(k):
        next(epoch)
    state: dict[str, Any] = loader.state_dict()
    del epoch
    return state


def their_resume(x: np.ndarray, y: np.ndarray, workers: int, state: dict[str, Any]) -> tuple[float, Any]:
    loader = theirs(x, y, workers)
    start = time.perf_counter()
    loader.load_state_dict(state)
    epoch = iter(loader)
    batch = next(epoch)
    seconds = time.perf_counter() - start
    del epoch  # stops its workers
    return seconds, batch


def torchdata_version() -> str | None:
    try:
        import torchdata
        from torchdata.stateful_dataloader import StatefulDataLoader  # noqa: F401
    except ImportError:
        return None
    return str(torchdata.__version__)


# ---- measuring ------------------------------------------------------------------------------------


def state_dict_cost(loader: Any, calls: int = 2_000) -> float:
    """Median seconds of one ``state_dict()`` call, mid-epoch (batch 98), in 20 groups of calls."""
    epoch = iter(loader)
    for _ in range(POINTS["50%"]):
        next(epoch)
    groups = []
    for _ in range(20):
        start = time.perf_counter()
        for _ in range(calls // 20):
            loader.state_dict()
        groups.append((time.perf_counter() - start) / (calls // 20))
    del epoch
    close = getattr(loader, "close", None)
    if close is not None:
        close()
    return statistics.median(groups)


def check(x: np.ndarray, y: np.ndarray, peer: bool) -> None:
    """Every resumed first batch is the uninterrupted run's batch k."""
    for workers in WORKERS:
        for k in POINTS.values():
            _, resumed = our_resume(x, y, workers, our_state(x, y, k))
            _, skipped = our_reiterate(x, y, 0, k)
            for a, b in zip(resumed, skipped, strict=True):
                assert np.array_equal(a, b), f"tinytorch resume at batch {k} with {workers} workers differs"
            if peer:
                _, theirs_resumed = their_resume(x, y, workers, their_state(x, y, workers, k))
                reference = iter(theirs(x, y, workers))  # its order depends on the worker count
                for _ in range(k):
                    next(reference)
                expected = next(reference)[1]
                del reference
                assert bool((theirs_resumed[1] == expected).all()), f"torchdata resume at batch {k} differs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    version = torchdata_version()
    x, y = data()
    print(f"{N:,} x 3x32x32 uint8, batch {BATCH}, {BATCHES} batches/epoch; rounds={args.rounds}; ", end="")
    print(f"torchdata {version}" if version else "torchdata not importable: tinytorch only")
    check(x, y, peer=version is not None)

    # ---- the state and state_dict()
    rows = []
    for name, k in POINTS.items():
        state = our_state(x, y, k)
        row = [name, f"{len(json.dumps(state))}", f"{len(pickle.dumps(state))}"]
        if version:
            sizes = []
            for workers in WORKERS:
                theirs_state = their_state(x, y, workers, k)
                try:
                    as_json = str(len(json.dumps(theirs_state)))
                except TypeError:
                    as_json = "not JSON"
                sizes.append(f"{len(pickle.dumps(theirs_state))} ({as_json})")
            row += sizes
        rows.append(tuple(row))
    header = ["resume point", "tinytorch JSON bytes", "tinytorch pickled"]
    if version:
        header += ["torchdata pickled (JSON), 0 workers", "torchdata pickled (JSON), 2 workers"]
    print("\nState size")
    print_table(rows, tuple(header))

    rows = []
    for workers in WORKERS:
        row = [f"{workers}", f"{state_dict_cost(ours(x, y, workers)) * 1e6:.1f}"]
        if version:
            row.append(f"{state_dict_cost(theirs(x, y, workers)) * 1e6:.1f}")
        rows.append(tuple(row))
    print("\nstate_dict() mid-epoch, µs per call (median)")
    print_table(rows, ("workers", "tinytorch", *(["torchdata"] if version else [])))

    # ---- first batch after resume, all variants in turns
    ours_states = {k: our_state(x, y, k) for k in POINTS.values()}
    theirs_states = (
        {(w, k): their_state(x, y, w, k) for w in WORKERS for k in POINTS.values()} if version else {}
    )
    measures: dict[str, Callable[[], float]] = {}
    for workers in WORKERS:
        for name, k in POINTS.items():
            measures[f"ours {workers} {name}"] = lambda w=workers, k=k: our_resume(x, y, w, ours_states[k])[0]
            measures[f"skip {workers} {name}"] = lambda w=workers, k=k: our_reiterate(x, y, w, k)[0]
            if version:
                measures[f"torchdata {workers} {name}"] = lambda w=workers, k=k: their_resume(
                    x, y, w, theirs_states[(w, k)]
                )[0]
    for measure in measures.values():
        measure()  # warm-up: first calls, page faults, torch's lazy imports
    medians = in_turns(measures, args.rounds)
    rows = []
    for workers in WORKERS:
        for name in POINTS:
            ms = {
                kind: medians[f"{kind} {workers} {name}"] * 1e3
                for kind in ("ours", "skip", "torchdata")
                if f"{kind} {workers} {name}" in medians
            }
            row = [
                f"{workers}",
                name,
                f"{ms['ours']:.1f}",
                f"{ms['skip']:.1f}",
                f"{ms['skip'] / ms['ours']:.1f}x",
            ]
            if version:
                row += [f"{ms['torchdata']:.1f}", f"{ms['torchdata'] / ms['ours']:.1f}x"]
            rows.append(tuple(row))
    print(
        "\nFirst batch after resume, ms (median); ratios: that variant's time / tinytorch load_state_dict's"
    )
    header = ["workers", "point", "tinytorch load_state_dict", "re-iterate and skip", "skip / ours"]
    if version:
        header += ["torchdata load_state_dict", "torchdata / ours"]
    print_table(rows, tuple(header))


if __name__ == "__main__":
    main()

"""Shared helpers for the benchmark scripts: timing and table printing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable


def time_epochs(make_epoch: Callable[[], Iterable[object]], epochs: int) -> tuple[float, int]:
    """Run one warm-up epoch, then ``epochs`` timed ones; return (median s/epoch, batches/epoch)."""
    times, batches = [], 0
    sum(1 for _ in make_epoch())
    for _ in range(epochs):
        start = time.perf_counter()
        batches = sum(1 for _ in make_epoch())
        times.append(time.perf_counter() - start)
    return statistics.median(times), batches


def in_turns(measures: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Median of each measure over ``rounds`` rounds in which every measure runs once, in turn.

    The order is reversed every other round. On this shared machine the same thing measured a
    minute apart differs by 10-30%, more than some of the differences measured, so peers are
    measured alternately instead of one after the other.
    """
    results: dict[str, list[float]] = {name: [] for name in measures}
    names = list(measures)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            results[name].append(measures[name]())
    return {name: statistics.median(values) for name, values in results.items()}


def print_table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print(line)
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(str(c).rjust(w) for c, w in zip(r, widths, strict=True)))

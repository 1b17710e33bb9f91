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


def print_table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print(line)
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(str(c).rjust(w) for c, w in zip(r, widths, strict=True)))

"""Per-epoch loader statistics: where the time went, from the consumer's point of view.

The loader records, for every batch: how long the consumer waited in ``next()`` (``wait``),
how long the consumer spent between batches (its training step, ``consumer``), and the stage
times measured where the batch was made (read, per-sample transform, collate, batch transform,
transport between processes). Recording costs a few clock reads per batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from tinytorch.data.fetch.timing import Made
from tinytorch.data.workers.transport import batch_footprint

__all__ = ["STAGES", "LoaderStats", "StatsRecorder", "WorkerStats"]

STAGES = ("read", "sample_transform", "collate", "batch_transform", "transport")


@dataclass
class WorkerStats:
    """Batches one worker made, the seconds it spent making them, and (process workers) the
    most memory private to it that it reported (``private_bytes``: what it does not share with
    the loading process; see ``workers.capacity.private_memory``).

    ``private_bytes`` is 0 where nothing was measured: thread workers and the loading process
    (``-1``), which share the loading process's memory; a process worker that made only one
    batch this epoch (a worker measures after sending a batch, so as not to delay it, and the
    figure travels with its next batch); and systems without ``/proc/self/smaps_rollup``
    (not Linux, or Linux before 4.14). ``str(stats)`` and ``diagnose`` leave 0 out.
    """

    batches: int = 0
    busy_seconds: float = 0.0
    private_bytes: int = 0


@dataclass
class LoaderStats:
    """Statistics of one epoch. A plain dataclass; ``str()`` gives a readable table.

    Attributes:
        epoch: the epoch number.
        num_workers, worker_type: how batches were made.
        batches, samples, nbytes: what was delivered (``nbytes``: bytes of numpy arrays).
        wall_seconds: from ``iter()`` to the last delivered batch (or to now, while running).
        wait_seconds: time the consumer spent blocked in ``next()`` waiting for data.
        consumer_seconds: time between a batch's delivery and the next ``next()`` call: the
            consumer's own work (the training step).
        stage_seconds: summed over batches, where they were made: ``read`` (dataset reads),
            ``sample_transform``, ``collate``, ``batch_transform``, ``transport``.
        per_worker: per worker id (``-1`` for the loading process).
        finished: whether the epoch ran to its end.
        skipped: samples the dataset left out of their batches (``ImageFolder(on_error="skip")``).
        batched_reads: the dataset reads a batch in one call (it has ``__getitems__``);
            ``None`` for an ``IterableDataset`` (it yields samples) or when not known.

    A worker's *utilization* (:attr:`utilization`) is the share of the epoch's wall time it
    spent making batches: well under 1 with the consumer waiting means something other than
    the workers' own work limits delivery (see docs/benchmarks.md, "Where the second core goes").
    """

    epoch: int
    num_workers: int
    worker_type: str
    batches: int = 0
    samples: int = 0
    nbytes: int = 0
    wall_seconds: float = 0.0
    wait_seconds: float = 0.0
    consumer_seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    per_worker: dict[int, WorkerStats] = field(default_factory=dict)
    finished: bool = False
    skipped: int = 0
    batched_reads: bool | None = None

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def mb_per_second(self) -> float:
        return self.nbytes / (1 << 20) / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def wait_share(self) -> float:
        """Share of the consumer's time spent waiting for data (0: never waited)."""
        total = self.wait_seconds + self.consumer_seconds
        return self.wait_seconds / total if total else 0.0

    @property
    def utilization(self) -> dict[int, float]:
        """Per worker id: busy seconds / the epoch's wall seconds, in ``[0, 1]`` (the loading
        process is ``-1``, its share is that of ``num_workers=0``'s batch making)."""
        if self.wall_seconds <= 0:
            return {}
        return {worker: min(1.0, w.busy_seconds / self.wall_seconds) for worker, w in self.per_worker.items()}

    @property
    def mean_utilization(self) -> float | None:
        """Mean :attr:`utilization` of the workers (``None`` without workers or batches)."""
        shares = [share for worker, share in self.utilization.items() if worker >= 0]
        if not shares or self.num_workers == 0:
            return None
        return sum(shares) / self.num_workers

    @property
    def step_seconds(self) -> float:
        """Mean consumer time per batch (the training step, as the loader saw it)."""
        return self.consumer_seconds / max(1, self.batches - 1)

    def __str__(self) -> str:
        def ms(seconds: float) -> str:
            return f"{1000 * seconds / max(1, self.batches):9.3f}"

        lines = [
            f"epoch {self.epoch}: {self.batches} batches, {self.samples} samples in "
            f"{self.wall_seconds:.2f} s ({self.samples_per_second:,.0f} samples/s, "
            f"{self.mb_per_second:,.1f} MB/s), "
            + (f"{self.num_workers} {self.worker_type} workers" if self.num_workers else "no workers")
            + ("" if self.finished else " [running]"),
            f"{'stage':<22}{'ms/batch':>9}",
            *(f"{name:<22}{ms(self.stage_seconds[name])}" for name in STAGES),
            f"{'consumer waited':<22}{ms(self.wait_seconds)}",
            f"{'consumer step':<22}{ms(self.consumer_seconds)}",
            f"waiting for data: {100 * self.wait_share:.1f}% of the consumer's time",
        ]
        if self.skipped:
            lines.append(f"skipped samples: {self.skipped} (bad files left out of their batches)")
        utilization = self.utilization
        for worker, w in sorted(self.per_worker.items()):
            name = "loading process" if worker < 0 else f"worker {worker}"
            share = utilization.get(worker)
            busy = f" ({100 * share:.0f}% of the epoch)" if share is not None else ""
            private = f", {w.private_bytes / (1 << 20):,.0f} MB private" if w.private_bytes else ""
            lines.append(f"{name:<22}{w.batches:>6} batches, busy {w.busy_seconds:.2f} s{busy}{private}")
        return "\n".join(lines)


class StatsRecorder:
    """Fills a :class:`LoaderStats` as an epoch's batches are delivered."""

    def __init__(self, stats: LoaderStats) -> None:
        self.stats = stats
        self._start = time.perf_counter()
        self._delivered_at: float | None = None

    def before_next(self) -> float:
        now = time.perf_counter()
        if self._delivered_at is not None:
            self.stats.consumer_seconds += now - self._delivered_at
        return now

    def delivered(self, asked_at: float, made: Made) -> None:
        now = time.perf_counter()
        s = self.stats
        s.wait_seconds += now - asked_at
        s.batches += 1
        samples, nbytes = batch_footprint(made.batch)
        s.samples += samples
        s.nbytes += nbytes
        t = made.times
        stage = s.stage_seconds
        stage["read"] += t.read
        stage["sample_transform"] += t.sample_transform
        stage["collate"] += t.collate
        stage["batch_transform"] += t.batch_transform
        stage["transport"] += t.transport
        s.skipped += t.skipped
        worker = s.per_worker.get(-1 if made.worker is None else made.worker)
        if worker is None:
            worker = s.per_worker.setdefault(-1 if made.worker is None else made.worker, WorkerStats())
        worker.batches += 1
        worker.busy_seconds += t.read + t.sample_transform + t.collate + t.batch_transform + t.transport
        if t.private_bytes > worker.private_bytes:
            worker.private_bytes = t.private_bytes
        s.wall_seconds = now - self._start
        self._delivered_at = now

    def finish(self) -> None:
        self.stats.finished = True

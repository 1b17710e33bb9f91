"""``tinytorch-data profile``: input-pipeline memory across batch sizes, and what fits a budget.

For each batch size a forked child process (so that one size's freed memory cannot hide the
next one's) runs a few batches with the standard augmentation while its proportional set size
(PSS, /proc/self/smaps_rollup) is sampled with each batch held. The increase over the child's
PSS before the loader existed is the pipeline's memory at that batch size. A line
``memory = fixed + per_sample * batch_size`` fitted through the points answers: what is the
largest batch whose *input pipeline* fits the budget? Model activations, gradients and optimizer
state are not included: they come on top.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tinytorch.analysis.sources import augmentation
from tinytorch.data import DataLoader

__all__ = ["MemoryFit", "MemoryPoint", "fit_memory", "largest_batch_within", "profile_memory", "pss_bytes"]


def pss_bytes(pids: list[int] | None = None) -> int:
    """Summed PSS of ``pids`` (default: this process) in bytes; 0 where /proc is unavailable."""
    total = 0
    for pid in pids or ["self"]:  # type: ignore[list-item]
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


@dataclass(frozen=True)
class MemoryPoint:
    """Pipeline memory at one batch size."""

    batch_size: int
    bytes_per_batch: int
    peak_pipeline_bytes: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _measure(dataset: Any, batch_size: int, batches: int, conn: Any) -> None:
    gc.collect()
    baseline = pss_bytes()
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=True, seed=0, batch_transform=augmentation(), stats=False
    )
    peak, nbytes = 0, 0
    for seen, (images, labels) in enumerate(loader, start=1):
        nbytes = max(nbytes, images.nbytes + labels.nbytes)
        peak = max(peak, pss_bytes() - baseline)
        if seen >= batches:
            break
    conn.send(MemoryPoint(batch_size, nbytes, max(0, peak)))
    conn.close()


def profile_memory(dataset: Any, batch_sizes: list[int], *, batches: int = 5) -> list[MemoryPoint]:
    """Measure every batch size in its own forked process; see the module docstring."""
    context = mp.get_context("fork")
    points = []
    for batch_size in sorted(batch_sizes):
        parent, child = context.Pipe(duplex=False)
        process = context.Process(target=_measure, args=(dataset, batch_size, batches, child))
        process.start()
        child.close()
        try:
            points.append(parent.recv())
        except EOFError:
            raise RuntimeError(
                f"measuring batch size {batch_size} failed (the process exited with {process.exitcode})"
            ) from None
        finally:
            process.join()
    return points


@dataclass(frozen=True)
class MemoryFit:
    """``memory = fixed_bytes + bytes_per_sample * batch_size``, fitted through measured points.

    ``measured`` is the range of batch sizes the fit rests on: an answer outside it is an
    extrapolation.
    """

    fixed_bytes: float
    bytes_per_sample: float
    measured: tuple[int, int]

    def predict(self, batch_size: float) -> float:
        return self.fixed_bytes + self.bytes_per_sample * batch_size

    def largest_within(self, budget_bytes: int) -> int | None:
        """The largest batch whose predicted memory fits ``budget_bytes``; ``None`` when even a
        batch of one does not fit, or when memory did not grow with the batch size."""
        if self.bytes_per_sample <= 0:
            return None
        best = int(np.floor((budget_bytes - self.fixed_bytes) / self.bytes_per_sample + 1e-6))
        return best if best >= 1 else None

    def extrapolates(self, batch_size: int) -> bool:
        return not self.measured[0] <= batch_size <= self.measured[1]


def fit_memory(points: list[MemoryPoint]) -> MemoryFit:
    """Least-squares line through ``points`` (with one point: through the origin)."""
    sizes = np.array([p.batch_size for p in points], dtype=np.float64)
    memory = np.array([p.peak_pipeline_bytes for p in points], dtype=np.float64)
    if len(points) >= 2 and np.ptp(sizes) > 0:
        per_sample, fixed = np.polyfit(sizes, memory, 1)
    else:
        per_sample, fixed = memory[0] / sizes[0], 0.0
    return MemoryFit(float(fixed), float(per_sample), (int(sizes.min()), int(sizes.max())))


def largest_batch_within(points: list[MemoryPoint], budget_bytes: int) -> int | None:
    """The largest batch size whose fitted pipeline memory stays within ``budget_bytes``.

    ``None`` when even a batch of one does not fit (see :meth:`MemoryFit.largest_within`).
    """
    return fit_memory(points).largest_within(budget_bytes)

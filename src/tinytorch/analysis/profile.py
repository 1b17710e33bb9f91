"""``tinytorch-data profile``: input-pipeline memory across batch sizes, and what fits a budget.

For each batch size a forked child process (so that one size's freed memory cannot hide the
next one's) runs a few batches with the standard augmentation while its proportional set size
(PSS, /proc/self/smaps_rollup) of anonymous and shared memory is sampled with each batch held
(file-backed pages are not counted: see :data:`PIPELINE_FIELDS`). The increase over the child's
PSS before the loader existed is the pipeline's memory at that batch size. A line
``memory = fixed + per_sample * batch_size`` fitted through the points answers: what is the
largest batch whose *input pipeline* fits the budget? Model activations, gradients and optimizer
state are not included: they come on top. Nor is a library's one-time cost: the compiled kernels
of the ``fast`` extra are loaded before the measuring processes are forked (see
:func:`load_compiled_kernels`), so a fit's fixed part is the pipeline's, not numba's.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tinytorch.analysis.sources import augmentation
from tinytorch.data import DataLoader

__all__ = [
    "MemoryFit",
    "MemoryPoint",
    "fit_memory",
    "load_compiled_kernels",
    "profile_memory",
    "pss_bytes",
]


PIPELINE_FIELDS = ("Pss_Anon", "Pss_Shmem")
"""What the pipeline allocates: anonymous memory and shared memory (process workers' batches).
File-backed pages (a memory-mapped dataset such as CIFAR10Dataset's cache or ShardedDataset's
shards) are left out: they are the page cache, shared by every process and reclaimable, and
reading a shuffled epoch touches all of them whatever the batch size."""


def pss_bytes(pids: list[int] | None = None, fields: tuple[str, ...] = ("Pss",)) -> int:
    """Summed PSS of ``pids`` (default: this process) in bytes, from /proc/PID/smaps_rollup.

    ``fields`` picks lines of that file (``Pss`` is all of it; ``Pss_Anon``, ``Pss_File``,
    ``Pss_Shmem`` its parts, Linux 5.8+); where none of them is there, ``Pss``. 0 where /proc
    is unavailable.
    """
    total = 0
    for pid in pids or ["self"]:  # type: ignore[list-item]
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                values = {
                    k: int(v.split()[0]) * 1024
                    for k, v in (line.split(":", 1) for line in f)
                    if k.startswith("Pss")
                }
        except (OSError, ValueError):
            continue
        found = [values[k] for k in fields if k in values]
        total += sum(found) if found else values.get("Pss", 0)
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
    baseline = pss_bytes(fields=PIPELINE_FIELDS)
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=True, seed=0, batch_transform=augmentation(), stats=False
    )
    peak, nbytes = 0, 0
    for seen, (images, labels) in enumerate(loader, start=1):
        nbytes = max(nbytes, images.nbytes + labels.nbytes)
        peak = max(peak, pss_bytes(fields=PIPELINE_FIELDS) - baseline)
        if seen >= batches:
            break
    conn.send(MemoryPoint(batch_size, nbytes, max(0, peak)))
    conn.close()


def load_compiled_kernels() -> int:
    """Load the batch transforms' compiled kernels (numba: the ``fast`` extra) in this process.

    Returns:
        The bytes of anonymous and shared memory (PSS) loading them added: numba and its LLVM
        compiler, tens of MB once per process whatever the batch size (28 MB on the project's
        machine). 0 without numba, or when they were loaded already.
    """
    from tinytorch.data.transforms.kernels import crop_flip_normalize_kernel

    before = pss_bytes(fields=PIPELINE_FIELDS)
    if crop_flip_normalize_kernel() is None:
        return 0
    return max(0, pss_bytes(fields=PIPELINE_FIELDS) - before)


def profile_memory(dataset: Any, batch_sizes: list[int], *, batches: int = 5) -> list[MemoryPoint]:
    """Measure every batch size in its own forked process; see the module docstring."""
    load_compiled_kernels()  # inherited by every measuring process: not counted as pipeline memory
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
    """Least-squares line through ``points`` with a fixed part of at least 0 bytes.

    A pipeline cannot need less than nothing at batch size 0: where the unconstrained line
    crosses below 0 (measurement noise, or memory growing faster than linearly at the largest
    batches), the best line with ``fixed_bytes >= 0`` is the one through the origin (the
    squared error is convex, so the constrained optimum lies on the boundary). With one point:
    through the origin.
    """
    sizes = np.array([p.batch_size for p in points], dtype=np.float64)
    memory = np.array([p.peak_pipeline_bytes for p in points], dtype=np.float64)
    per_sample, fixed = float(memory @ sizes / (sizes @ sizes)), 0.0
    if len(points) >= 2 and np.ptp(sizes) > 0:
        free_per_sample, free_fixed = np.polyfit(sizes, memory, 1)
        if free_fixed >= 0:
            per_sample, fixed = free_per_sample, free_fixed
    return MemoryFit(float(fixed), float(per_sample), (int(sizes.min()), int(sizes.max())))

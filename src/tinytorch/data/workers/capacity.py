"""Checking, before the first batch is handed out, that the prefetch window fits in memory."""

from __future__ import annotations

from typing import Any

from tinytorch.data.workers.transport import batch_footprint

__all__ = [
    "InsufficientSharedMemoryError",
    "available_memory",
    "batch_nbytes",
    "check_window",
    "private_memory",
]


class InsufficientSharedMemoryError(MemoryError):
    """The batches in flight would not fit in the memory that is available for them."""


def batch_nbytes(batch: Any) -> int:
    """Bytes of all numpy arrays in ``batch``."""
    return batch_footprint(batch)[1]


def private_memory(pid: int | str = "self") -> int | None:
    """Bytes of memory private to process ``pid`` (``Private_Clean + Private_Dirty`` of
    ``/proc/<pid>/smaps_rollup``), ``None`` where that cannot be read.

    For a forked worker this is what it does not share with the loading process: memory it
    allocated, and pages of the parent it wrote to, such as the reference counts of a dataset
    made of Python objects (each object read is copied into the worker: copy-on-read).
    """
    total = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith(("Private_Clean:", "Private_Dirty:", "Private_Hugetlb:")):
                    total += int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return total


def available_memory() -> int | None:
    """``MemAvailable`` from /proc/meminfo in bytes, or ``None`` where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_window(batch: Any, *, num_workers: int, prefetch_factor: int, available: int | None) -> None:
    """Raise before a bus error or the OOM killer could: the window must fit in ``available``.

    Shared memory here is anonymous (``memfd_create``), charged to RAM, not to the size of
    ``/dev/shm``; so the limit is the memory available, and a small ``/dev/shm`` (Docker's
    64 MB default) does not matter.
    """
    if available is None:
        return
    per_batch = batch_nbytes(batch)
    window = num_workers * prefetch_factor + 1
    needed = per_batch * window
    if needed > available:
        mb = 1 / (1 << 20)
        raise InsufficientSharedMemoryError(
            f"the DataLoader's prefetch window needs {window} batches x {per_batch * mb:.1f} MB = "
            f"{needed * mb:.0f} MB of shared memory, but only {available * mb:.0f} MB of memory is "
            f"available. Lower prefetch_factor (now {prefetch_factor}), num_workers (now "
            f"{num_workers}) or batch_size, or use worker_type='thread' (no shared memory)"
        )

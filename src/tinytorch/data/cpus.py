"""``available_cores()``: the CPU cores this process may run on.

Shared by every stage (like :mod:`tinytorch.data.worker_info`): the loader warns when
``num_workers`` exceeds it, decode threads default to it, and the analysis tools advise within
it. One place, so the three agree on a machine with an affinity mask (a container's
``--cpuset-cpus``, ``taskset``, a cluster scheduler's allocation).
"""

from __future__ import annotations

import os

__all__ = ["available_cores"]


def available_cores() -> int:
    """CPU cores this process may run on: its affinity mask where the OS has one (Linux), else
    ``os.cpu_count()``; at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity masks here (macOS, Windows)
        return max(1, os.cpu_count() or 1)

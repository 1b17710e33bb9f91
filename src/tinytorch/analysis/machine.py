"""The machine a measurement ran on: cores this process may use, and a caption for results."""

from __future__ import annotations

import os
import platform

__all__ = ["available_cores", "describe_machine", "versions"]


def available_cores() -> int:
    """CPU cores this process may run on: its affinity mask where the OS has one (Linux; a
    container's ``--cpuset-cpus``, ``taskset``), else ``os.cpu_count()``; at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine() -> str:
    """E.g. ``2 cores (Intel(R) Xeon(R) ..., x86_64), Linux``."""
    return f"{available_cores()} cores ({_cpu_model()}, {platform.machine()}), {platform.system()}"


def versions() -> str:
    """E.g. ``tinytorch-data 0.1.0, numpy 2.4.6, Python 3.11.7``."""
    import numpy as np

    import tinytorch

    return (
        f"tinytorch-data {tinytorch.__version__}, numpy {np.__version__}, Python {platform.python_version()}"
    )

"""The machine a measurement ran on: cores this process may use, and a caption for results."""

from __future__ import annotations

import platform

from tinytorch.data.cpus import available_cores

__all__ = ["available_cores", "describe_machine", "versions"]


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

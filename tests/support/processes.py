"""Helpers for tests that run a loader in a separate Python process and watch its workers."""

from __future__ import annotations

import pathlib
import time

TESTS_DIR = pathlib.Path(__file__).resolve().parent.parent


def loader_script(path: pathlib.Path, body: str) -> pathlib.Path:
    """Write a script to ``path`` that can import ``support`` and ``tinytorch``, then runs ``body``."""
    path.write_text(
        "import sys, os, time\n"
        f"sys.path[:0] = [{str(TESTS_DIR)!r}]\n"
        "from support.worker_datasets import Squares\n"
        "from tinytorch import DataLoader\n" + body
    )
    return path


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        return (pathlib.Path("/proc") / str(pid) / "stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def wait_gone(pids: list[int], seconds: float) -> list[int]:
    """Wait up to ``seconds`` for every process in ``pids`` to end; return those still running."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(running(pid) for pid in pids):
        time.sleep(0.05)
    return [pid for pid in pids if running(pid)]

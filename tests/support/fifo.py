"""Calling code that must refuse a FIFO without hanging on it, in a test that cannot hang.

A regression that opens a FIFO for reading blocks until a writer appears: :func:`without_hanging`
runs the call in a thread, and if it has not returned after ``timeout`` seconds it opens every
FIFO given for writing (which releases a blocked reader) and fails the test.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest


def without_hanging(call: Callable[[], Any], fifos: Sequence[Path], timeout: float = 10.0) -> Any:
    """``call()``'s result (or its exception, raised here); fails the test if it blocks."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as e:  # handed to the test thread
            outcome["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        for fifo in fifos:  # a writer that closes at once: the reader sees end of file
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        thread.join(timeout)
        pytest.fail(f"the call blocked on a FIFO ({', '.join(map(str, fifos))}) instead of refusing it")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")

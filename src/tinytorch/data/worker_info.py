"""``get_worker_info()``: which worker is running this code (PyTorch's API).

Shared by every stage (like :mod:`tinytorch.data.seeding`): datasets and samplers read it to
split a stream between workers; the workers stage sets it around each batch.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["WorkerInfo", "get_worker_info", "worker_info"]


@dataclass(frozen=True)
class WorkerInfo:
    """Describes the worker that runs the current code.

    Attributes:
        id: the worker's index, ``0 <= id < num_workers``.
        num_workers: how many workers the loader runs.
        seed: the loader's seed (per-batch randomness comes from
            :func:`~tinytorch.data.seeding.get_batch_context`, not from the worker).
        dataset: the worker's dataset object (a copy in process workers, shared in threads).
        kind: ``"process"`` or ``"thread"``.
        pid: the worker's process id.
    """

    id: int
    num_workers: int
    seed: int
    dataset: Any
    kind: str
    pid: int


_INFO: contextvars.ContextVar[WorkerInfo | None] = contextvars.ContextVar(
    "tinytorch_worker_info", default=None
)


def get_worker_info() -> WorkerInfo | None:
    """The :class:`WorkerInfo` of the calling worker, or ``None`` in the loading process.

    Correct in process workers and in thread workers (each thread has its own value).
    """
    return _INFO.get()


@contextlib.contextmanager
def worker_info(info: WorkerInfo) -> Iterator[WorkerInfo]:
    """Make ``info`` what :func:`get_worker_info` returns in this thread for the ``with`` block.

    Workers set it around each batch (and ``worker_init_fn``), so an idle worker thread keeps
    no reference to the dataset.
    """
    token = _INFO.set(info)
    try:
        yield info
    finally:
        _INFO.reset(token)

"""Messages between the loader and its workers (small, frozen, picklable)."""

from __future__ import annotations

import contextlib
import pickle
from dataclasses import dataclass, field
from typing import Any

from tinytorch.data.fetch.fetcher import BatchTask
from tinytorch.data.fetch.timing import StageTimes
from tinytorch.data.workers.errors import WorkerError

__all__ = ["Done", "Exhausted", "Failed", "Job", "Reply", "Started", "rebuild_exception"]


@dataclass(frozen=True)
class Job:
    """Make ``task``; ``generation`` tells epochs of persistent workers apart.

    ``released`` lists the worker's shared-memory blocks the consumer no longer uses.
    """

    generation: int
    task: BatchTask
    released: tuple[int, ...] = ()


@dataclass(frozen=True)
class Started:
    """A process worker is running and about to wait for its first job (see ProcessPool.start)."""

    pid: int


@dataclass(frozen=True)
class Done:
    """Batch ``index`` of ``generation`` is ready; ``payload`` is the batch or a ``Packed``."""

    generation: int
    index: int
    payload: Any
    times: StageTimes = field(default_factory=StageTimes)


@dataclass(frozen=True)
class Exhausted:
    """The worker's stream has no batch for job ``index`` of ``generation`` (IterableDataset)."""

    generation: int
    index: int


@dataclass(frozen=True)
class Failed:
    """Making batch ``index`` raised. ``exception`` is the pickled exception when picklable."""

    generation: int
    index: int
    epoch: int
    worker_id: int
    pid: int
    kind: str
    type_name: str
    traceback: str
    exception: bytes | None

    @staticmethod
    def of(
        error: BaseException,
        *,
        generation: int,
        task: BatchTask | None,
        worker_id: int,
        pid: int,
        kind: str,
        traceback: str,
    ) -> Failed:
        pickled: bytes | None
        try:
            pickled = pickle.dumps(error)
            pickle.loads(pickled)
        except BaseException:  # an exception whose pickling raises (even a BaseException) travels as text
            pickled = None
        return Failed(
            generation=generation,
            index=-1 if task is None else task.index,
            epoch=-1 if task is None else task.epoch,
            worker_id=worker_id,
            pid=pid,
            kind=kind,
            type_name=f"{type(error).__module__}.{type(error).__qualname__}",
            traceback=traceback,
            exception=pickled,
        )


Reply = Done | Failed | Exhausted
"""What a worker sends back for a job."""


def rebuild_exception(failure: Failed) -> BaseException:
    """An exception of the original type (where possible) whose message says where it happened.

    The message names the worker id and pid, the batch and epoch, and carries the worker's
    traceback, and ``str()`` of the result shows it as readable lines whatever the type's own
    ``__str__`` does (``KeyError`` quotes its argument, which would print a multi-line message
    as one line of ``\\n``; torch's ``KeyErrorMessage`` solves the same). The original exception
    is attached as ``__cause__`` when it could be pickled. Types that cannot be re-created with
    one message argument become :class:`WorkerError` (a ``RuntimeError``), and so does a
    ``StopIteration`` (as Python turns one raised inside a generator into a ``RuntimeError``):
    re-raised as itself, it would end the epoch early and silently. The original's attributes
    (an ``ImageDecodeError``'s ``path`` and ``index``, say) are copied over.
    """
    doing = (  # a failure before any batch is worker_init_fn's (workers/loop.py)
        f"making batch {failure.index} of epoch {failure.epoch}"
        if failure.index >= 0
        else "running worker_init_fn at start-up"
    )
    message = (
        f"Caught {failure.type_name} in DataLoader {failure.kind} worker {failure.worker_id} "
        f"(pid {failure.pid}) while {doing}.\nOriginal traceback:\n{failure.traceback}"
    )
    original: BaseException | None = None
    if failure.exception is not None:
        try:
            original = pickle.loads(failure.exception)
        except Exception:
            original = None
    error: BaseException = WorkerError(message)
    if original is not None and not isinstance(original, (StopIteration, StopAsyncIteration)):
        for text in (message, _Readable(message)):
            with contextlib.suppress(Exception):
                candidate = type(original)(text)
                if str(candidate) == message:
                    error = candidate
                    break
        if error is not original and type(error) is type(original):
            with contextlib.suppress(Exception):  # the original's attributes (a path, an index)
                error.__dict__.update(vars(original))
    error.__cause__ = original
    return error


class _Readable(str):
    """A message whose ``repr`` is itself, for types whose ``str()`` is the ``repr`` of their
    argument (``KeyError``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)

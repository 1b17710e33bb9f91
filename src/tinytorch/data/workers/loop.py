"""The loop every worker runs: receive a job, make the batch, send it (or the failure) back.

The same function serves thread workers and process workers; only the channel (how jobs and
results travel, where a batch's arrays are allocated) differs.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from tinytorch.data.fetch.fetcher import BatchTask, StreamExhausted
from tinytorch.data.fetch.timing import StageTimes
from tinytorch.data.seeding import seed_global_rngs
from tinytorch.data.worker_info import WorkerInfo, worker_info
from tinytorch.data.workers.messages import Done, Exhausted, Failed, Job, Reply

__all__ = ["Channel", "PoolSpec", "worker_loop"]


@dataclass(frozen=True, eq=False)
class PoolSpec:
    """What every pool of workers is built from (compared by identity: a new spec, new workers).

    Attributes:
        make_batch: the fetcher's ``make``: a task to ``(batch, stage times)``.
        dataset: the dataset (for ``get_worker_info().dataset``).
        num_workers: how many workers.
        seed: the loader's seed.
        worker_init_fn: called in each worker with its id before its first batch.
        seed_globals: process workers seed the global generators per batch (``False`` when
            only this library's code makes a batch: nothing draws from them).
    """

    make_batch: Callable[[BatchTask], tuple[Any, StageTimes]]
    dataset: Any
    num_workers: int
    seed: int
    worker_init_fn: Callable[[int], None] | None = None
    seed_globals: bool = True

    def info(self, worker_id: int, kind: str, pid: int) -> WorkerInfo:
        """What :func:`get_worker_info` returns in worker ``worker_id``."""
        return WorkerInfo(worker_id, self.num_workers, self.seed, self.dataset, kind, pid)


class Channel(Protocol):
    """A worker's link to the loader (an extension point: one per kind of worker).

    ``receive()`` returns the next job, or ``None`` when the worker must stop; ``making()``
    surrounds the making of one batch (process workers allocate its arrays in shared memory
    there); ``package`` turns a finished batch into the ``Done`` message; ``send`` delivers it.
    """

    def receive(self) -> Job | None: ...

    def making(self) -> contextlib.AbstractContextManager[Any]: ...

    def package(self, job: Job, batch: Any, times: StageTimes) -> Done: ...

    def send(self, message: Reply) -> None: ...


def worker_loop(
    channel: Channel,
    spec: Callable[[], PoolSpec | None],
    worker_id: int,
    kind: str,
    *,
    seed_globals: bool,
) -> None:
    """Serve jobs until told to stop (``None``), the channel closes, or the spec is gone.

    Args:
        channel: the worker's end of its connection to the loader.
        spec: returns what to run (a weak reference for threads, so an idle worker thread keeps
            no user object, and through it the loader, alive); ``None`` ends the loop.
        worker_id: this worker's index.
        kind: ``"process"`` or ``"thread"`` (for ``get_worker_info()`` and messages).
        seed_globals: seed the global RNGs per batch (process workers: their globals belong to
            the loader; see :func:`tinytorch.data.seeding.seed_global_rngs`).

    Everything a batch raises, ``SystemExit`` and ``KeyboardInterrupt`` included, is sent back
    as a ``Failed`` message and re-raised by the loader in the batch's turn: a worker never
    dies silently and the loader never waits for a batch that will not come.
    """
    pid = os.getpid()

    def failure(error: BaseException, generation: int, task: BatchTask | None) -> Failed:
        return Failed.of(
            error,
            generation=generation,
            task=task,
            worker_id=worker_id,
            pid=pid,
            kind=kind,
            traceback=traceback.format_exc(),
        )

    first = spec()
    if first is None:
        return
    if first.worker_init_fn is not None:
        try:
            with _as_worker(first, worker_id, kind, pid):
                first.worker_init_fn(worker_id)
        except BaseException as e:
            channel.send(failure(e, -1, None))
            return
    del first
    while True:
        try:
            job = channel.receive()
        except (EOFError, OSError):
            return  # the loader is gone
        if job is None:
            return
        current = spec()
        if current is None:
            return
        try:
            with _as_worker(current, worker_id, kind, pid), channel.making():
                if seed_globals and current.seed_globals:
                    seed_global_rngs(current.seed, job.task.epoch, job.task.index)
                batch, times = current.make_batch(job.task)
                message: Reply = channel.package(job, batch, times)
                del batch
        except StreamExhausted:
            message = Exhausted(job.generation, job.task.index)
        except BaseException as e:
            message = failure(e, job.generation, job.task)
        del current
        try:
            channel.send(message)
        except (BrokenPipeError, ConnectionResetError):
            return
        except Exception as e:  # the batch itself could not be sent (e.g. not picklable)
            try:
                channel.send(failure(e, job.generation, job.task))
            except (BrokenPipeError, ConnectionResetError):
                return
        del message  # an idle worker holds no batch


@contextlib.contextmanager
def _as_worker(spec: PoolSpec, worker_id: int, kind: str, pid: int) -> Iterator[None]:
    with worker_info(spec.info(worker_id, kind, pid)):
        yield

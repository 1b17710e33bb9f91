"""The loop every worker runs: receive a job, make the batch, send it (or the failure) back.

The same function serves thread workers and process workers; only the channel and the
transport of the finished batch differ.
"""

from __future__ import annotations

import os
import random
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from tinytorch.data.fetch.fetcher import BatchTask
from tinytorch.data.fetch.timing import StageTimes
from tinytorch.data.seeding import Stream, derive_rng
from tinytorch.data.workers.info import WorkerInfo, set_worker_info
from tinytorch.data.workers.messages import Done, Failed, Job

__all__ = ["Channel", "PoolSpec", "seed_global_rngs", "worker_loop"]


@dataclass(frozen=True)
class PoolSpec:
    """What every pool of workers is built from.

    Attributes:
        make_batch: the fetcher's ``make``: a task to ``(batch, stage times)``.
        dataset: the dataset (for ``get_worker_info().dataset``).
        num_workers: how many workers.
        seed: the loader's seed.
        worker_init_fn: called in each worker with its id before its first batch.
    """

    make_batch: Callable[[BatchTask], tuple[Any, StageTimes]]
    dataset: Any
    num_workers: int
    seed: int
    worker_init_fn: Callable[[int], None] | None = None

    def info(self, worker_id: int, kind: str, pid: int) -> WorkerInfo:
        """What :func:`get_worker_info` returns in worker ``worker_id``."""
        return WorkerInfo(worker_id, self.num_workers, self.seed, self.dataset, kind, pid)


class Channel(Protocol):
    """A worker's link to the loader: ``receive()`` a job (``None``: stop), ``send`` replies."""

    def receive(self) -> Job | None: ...

    def send(self, message: Done | Failed) -> None: ...


def seed_global_rngs(seed: int, task: BatchTask) -> None:
    """Seed numpy's and Python's global generators for this batch.

    Only process workers do this: a process worker's global state belongs to the loader, so
    user code calling ``np.random.*`` or ``random.*`` in ``__getitem__`` gets a stream derived
    from ``(seed, epoch, batch index)``, independent of which worker runs the batch. torch's
    global generator is not reseeded: ``torch.manual_seed`` costs ~90 us, more than a small
    batch; code that needs torch randomness should seed a ``torch.Generator`` from
    ``get_batch_context().rng``.
    """
    value = int(derive_rng(seed, Stream.WORKER_GLOBALS, task.epoch, task.index).integers(2**32))
    np.random.seed(value)
    random.seed(value)


def worker_loop(
    channel: Channel,
    make_batch: Callable[[BatchTask], tuple[Any, StageTimes]],
    package: Callable[[Job, Any, StageTimes], Done],
    info: WorkerInfo,
    worker_init_fn: Callable[[int], None] | None,
    *,
    seed_globals: bool,
) -> None:
    """Serve jobs until told to stop (``None``) or the channel closes.

    Args:
        channel: the worker's end of its connection to the loader.
        make_batch: the fetcher's ``make`` (read, collate, batch transform; with times).
        package: turns a finished batch into the ``Done`` message (shared memory for processes).
        info: what :func:`~tinytorch.data.workers.info.get_worker_info` returns here.
        worker_init_fn: called once with the worker id before the first job.
        seed_globals: seed global RNGs per batch (process workers only).
    """
    set_worker_info(info)

    def failure(error: BaseException, generation: int, task: BatchTask | None) -> Failed:
        return Failed.of(
            error,
            generation=generation,
            task=task,
            worker_id=info.id,
            pid=os.getpid(),
            kind=info.kind,
            traceback=traceback.format_exc(),
        )

    if worker_init_fn is not None:
        try:
            worker_init_fn(info.id)
        except Exception as e:
            channel.send(failure(e, -1, None))
            return
    while True:
        try:
            job = channel.receive()
        except (EOFError, OSError):
            return  # the loader is gone
        if job is None:
            return
        try:
            if seed_globals:
                seed_global_rngs(info.seed, job.task)
            batch, times = make_batch(job.task)
            message: Done | Failed = package(job, batch, times)
        except Exception as e:
            message = failure(e, job.generation, job.task)
        try:
            channel.send(message)
        except (BrokenPipeError, ConnectionResetError):
            return
        except Exception as e:  # the batch itself could not be sent (e.g. not picklable)
            channel.send(failure(e, job.generation, job.task))

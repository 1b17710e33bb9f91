"""Worker threads: the same worker loop, in this process, results handed over as objects.

Threads share the process's memory, so batches need no transport at all, start-up is
instant, and nothing has to be picklable. They run in parallel where the work releases the
GIL (numpy's copies, gathers and arithmetic do). Randomness: global RNGs are shared between
threads and are not seeded; random code must use ``get_batch_context().rng``.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from typing import Any

from tinytorch.data.fetch.fetcher import BatchTask
from tinytorch.data.fetch.timing import StageTimes
from tinytorch.data.workers.loop import PoolSpec, worker_loop
from tinytorch.data.workers.messages import Done, Failed, Job

__all__ = ["ThreadPool"]


class _ThreadChannel:
    def __init__(
        self,
        jobs: queue.SimpleQueue[Job | None],
        results: queue.SimpleQueue[Any],
        worker_id: int,
        stop: threading.Event,
    ) -> None:
        self.jobs, self.results, self.worker_id, self.stop = jobs, results, worker_id, stop

    def receive(self) -> Job | None:
        job = self.jobs.get()
        return None if self.stop.is_set() else job

    def send(self, message: Done | Failed) -> None:
        self.results.put((self.worker_id, message))


def _package(job: Job, batch: Any, times: StageTimes) -> Done:
    return Done(job.generation, job.task.index, batch, times)


class ThreadPool:
    """``num_workers`` daemon threads running ``make_batch`` on the jobs they are sent."""

    kind = "thread"

    def __init__(self, spec: PoolSpec) -> None:
        self.spec = spec
        self.num_workers = spec.num_workers
        self._jobs: list[queue.SimpleQueue[Job | None]] = []
        self._results: queue.SimpleQueue[tuple[int, Done | Failed]] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    @property
    def pids(self) -> list[int]:
        return []

    def start(self) -> None:
        for worker_id in range(self.num_workers):
            jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
            info = self.spec.info(worker_id, "thread", os.getpid())
            channel = _ThreadChannel(jobs, self._results, worker_id, self._stop)
            thread = threading.Thread(
                target=worker_loop,
                args=(channel, self.spec.make_batch, _package, info, self.spec.worker_init_fn),
                kwargs={"seed_globals": False},
                name=f"tinytorch-worker-{worker_id}",
                daemon=True,
            )
            thread.start()
            self._jobs.append(jobs)
            self._threads.append(thread)

    def send(self, worker_id: int, generation: int, task: BatchTask) -> None:
        self._jobs[worker_id].put(Job(generation, task))

    def wait(self, timeout: float | None) -> list[tuple[int, Done | Failed]]:
        try:
            messages = [self._results.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                messages.append(self._results.get_nowait())
            except queue.Empty:
                return messages

    def decode(self, worker_id: int, message: Done) -> Any:
        return message.payload

    def discard(self, worker_id: int, message: Done) -> None:
        pass

    def reap(self, *, block: bool) -> bool:
        """Nothing to collect: :meth:`shutdown` has stopped the threads (see ProcessPool.reap)."""
        return True

    def shutdown(self, *, wait: bool = True) -> None:
        """Ask every thread to stop; a thread stuck inside user code is left as a daemon.

        Threads stop in well under a millisecond, so ``wait`` changes nothing here.
        """
        self._stop.set()
        for jobs in self._jobs:
            jobs.put(None)
        deadline = time.monotonic() + 1.0
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._jobs.clear()
        self._threads.clear()

"""Worker threads: the same worker loop, in this process, results handed over as objects.

Threads share the process's memory, so batches need no transport at all, start-up is
instant, and nothing has to be picklable. A batch's large arrays are allocated from the pool's
:class:`~tinytorch.data.memory.RecycledArena`: buffers the consumer has dropped are reused,
warm, instead of being handed back to the system and faulted in again every batch. They run in
parallel where the work releases the GIL (numpy's copies, gathers and arithmetic do; the
compiled kernels of the ``fast`` extra release it for the whole batch). Randomness: global
RNGs are shared between threads and are not seeded; random code must use
``get_batch_context().rng``.

A worker thread holds the pool's spec (dataset, collate function, user callbacks) only while
it makes a batch: idle, it holds a weak reference. A running thread is a garbage-collection
root, so a strong reference from it would keep a loader whose ``collate_fn`` refers back to
its owner alive forever, and the thread with it.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from tinytorch.data.fetch.fetcher import BatchTask
from tinytorch.data.fetch.timing import StageTimes
from tinytorch.data.memory import RecycledArena, allocating_in
from tinytorch.data.workers.loop import PoolSpec, worker_loop
from tinytorch.data.workers.messages import Done, Job, Reply

__all__ = ["ThreadPool"]

JOIN_SECONDS = 1.0
"""How long a stop waits for threads to finish their current batch (a stuck one is left)."""


class _ThreadChannel:
    def __init__(
        self,
        jobs: queue.SimpleQueue[Job | None],
        results: queue.SimpleQueue[tuple[int, Reply]],
        worker_id: int,
        stop: threading.Event,
        arena: RecycledArena,
    ) -> None:
        self.jobs, self.results, self.worker_id, self.stop = jobs, results, worker_id, stop
        self.arena = arena

    def receive(self) -> Job | None:
        job = self.jobs.get()
        return None if self.stop.is_set() else job

    def making(self) -> contextlib.AbstractContextManager[Any]:
        return allocating_in(self.arena)

    def package(self, job: Job, batch: Any, times: StageTimes) -> Done:
        return Done(job.generation, job.task.index, batch, times)

    def send(self, message: Reply) -> None:
        self.results.put((self.worker_id, message))


class _Threads:
    """What must be stopped, without the spec (see ``Pool.stopper``)."""

    def __init__(self) -> None:
        self.jobs: list[queue.SimpleQueue[Job | None]] = []
        self.threads: list[threading.Thread] = []
        self.stop = threading.Event()

    def shutdown(self) -> None:
        """Ask every thread to stop; a thread stuck inside user code is left as a daemon."""
        self.stop.set()
        for jobs in self.jobs:
            jobs.put(None)
        deadline = time.monotonic() + JOIN_SECONDS
        for thread in self.threads:
            if thread is not threading.current_thread():
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self.jobs.clear()
        self.threads.clear()


class ThreadPool:
    """``spec.num_workers`` daemon threads making the batches they are sent (implements ``Pool``)."""

    kind = "thread"

    def __init__(self, spec: PoolSpec) -> None:
        self.spec = spec
        self.num_workers = spec.num_workers
        self._results: queue.SimpleQueue[tuple[int, Reply]] = queue.SimpleQueue()
        self._threads = _Threads()
        self._arena = RecycledArena()

    @property
    def pids(self) -> list[int]:
        return []

    def stopper(self) -> Callable[[], None]:
        return self._threads.shutdown

    def start(self) -> None:
        spec_ref = weakref.ref(self.spec)
        for worker_id in range(self.num_workers):
            jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
            channel = _ThreadChannel(jobs, self._results, worker_id, self._threads.stop, self._arena)
            thread = threading.Thread(
                target=worker_loop,
                args=(channel, spec_ref, worker_id, "thread"),
                kwargs={"seed_globals": False},
                name=f"tinytorch-worker-{worker_id}",
                daemon=True,
            )
            thread.start()
            self._threads.jobs.append(jobs)
            self._threads.threads.append(thread)

    def send(self, worker_id: int, generation: int, task: BatchTask) -> None:
        self._threads.jobs[worker_id].put(Job(generation, task))

    def wait(self, timeout: float | None) -> list[tuple[int, Reply]]:
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

    def shutdown(self, *, wait: bool = True) -> None:
        """Ask every thread to stop (threads stop in well under a millisecond; ``wait`` changes
        nothing); a thread stuck inside user code is left as a daemon."""
        self._threads.shutdown()
        self._arena.close()

    def reap(self, *, block: bool) -> bool:
        """Nothing to collect: :meth:`shutdown` has stopped the threads."""
        return True

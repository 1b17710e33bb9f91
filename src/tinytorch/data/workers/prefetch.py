"""Keeping workers busy and handing batches back in order.

:class:`OrderedPrefetcher` is the only place that knows the rules: at most ``window`` jobs per
worker in flight, job ``k`` to worker ``k % num_workers`` (as PyTorch does: a worker keeps
touching the same part of a sequentially read dataset, so copy-on-write pages it has not
touched stay shared), results buffered until their turn,
results of an abandoned epoch dropped, failures and timeouts turned into exceptions. It talks
to any pool with ``send``/``wait``/``decode``/``discard`` and can be tested with a fake one.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator

from tinytorch.data.fetch.fetcher import BatchTask
from tinytorch.data.fetch.timing import Made
from tinytorch.data.workers.errors import WorkerTimeoutError
from tinytorch.data.workers.messages import Done, Failed, Reply, rebuild_exception
from tinytorch.data.workers.pool import Pool

__all__ = ["Inflight", "OrderedPrefetcher"]

POLL_SECONDS = 1.0
"""Longest single wait; between waits the pool checks that its workers are alive."""

STALL_WARNING_SECONDS = 120.0
"""With ``timeout=0`` (wait forever), a batch this late is reported once per epoch with
``warnings.warn``: a worker stuck in user code is never waited for silently."""


class Inflight:
    """Jobs sent and not yet answered, per worker (shared by the epochs of persistent workers)."""

    def __init__(self, num_workers: int) -> None:
        self.jobs: list[dict[tuple[int, int], BatchTask]] = [{} for _ in range(num_workers)]

    def count(self, worker_id: int) -> int:
        return len(self.jobs[worker_id])

    def owner(self, generation: int, index: int) -> int | None:
        for worker_id, jobs in enumerate(self.jobs):
            if (generation, index) in jobs:
                return worker_id
        return None


class OrderedPrefetcher(Iterator[Made]):
    """Runs ``tasks`` on ``pool`` and yields their batches (as :class:`Made`) in task order.

    Args:
        pool: the workers.
        inflight: bookkeeping of unanswered jobs, owned by whoever owns the pool.
        tasks: the epoch's tasks, in order (indices ``start``, ``start + 1``, ...).
        generation: tags this epoch's jobs; results of other generations are dropped.
        window: jobs in flight per worker (``prefetch_factor``).
        timeout: seconds to wait for the next batch before raising (0 waits forever).
        start: the index of the first task (a resumed epoch starts after 0).
    """

    def __init__(
        self,
        pool: Pool,
        inflight: Inflight,
        tasks: Iterator[BatchTask],
        *,
        generation: int,
        window: int,
        timeout: float,
        start: int = 0,
    ) -> None:
        self.pool, self.inflight, self.tasks = pool, inflight, tasks
        self.generation, self.window, self.timeout = generation, window, timeout
        self._ready: dict[int, tuple[int, Reply]] = {}
        self._next = start
        self._sent = start
        self._held: BatchTask | None = None  # next task, waiting for its worker to have room
        self._exhausted = False
        self._warned = False
        self.healthy = True
        """False once a worker timed out or died, or waiting failed: the pool must not be reused."""

    def _fill(self) -> None:
        while not self._exhausted:
            if self._held is None:
                self._held = next(self.tasks, None)
                if self._held is None:
                    self._exhausted = True
                    return
            task = self._held
            worker_id = task.index % self.pool.num_workers
            if self.inflight.count(worker_id) >= self.window:
                return
            self._held = None
            self.pool.send(worker_id, self.generation, task)
            self.inflight.jobs[worker_id][(self.generation, task.index)] = task
            self._sent += 1

    def __next__(self) -> Made:
        self._fill()
        if self._next >= self._sent and self._exhausted:
            raise StopIteration
        start = time.monotonic()
        while self._next not in self._ready:
            waited = time.monotonic() - start
            if self.timeout and waited >= self.timeout:
                self.healthy = False
                raise self._timeout_error(waited)
            if not self.timeout and waited >= STALL_WARNING_SECONDS and not self._warned:
                self._warned = True
                warnings.warn(self._stall_message(waited), RuntimeWarning, stacklevel=3)
            budget = POLL_SECONDS if not self.timeout else min(POLL_SECONDS, self.timeout - waited)
            try:
                answered = self.pool.wait(budget)
            except BaseException:
                self.healthy = False
                raise
            for worker_id, message in answered:
                self._receive(worker_id, message)
            self._fill()  # answered jobs (even stale ones) free room in the window
        worker_id, message = self._ready.pop(self._next)
        self._next += 1
        if isinstance(message, Failed):
            raise rebuild_exception(message)  # in its turn: earlier batches were delivered
        assert isinstance(message, Done)  # a map-style epoch has no stream to exhaust
        decode_start = time.perf_counter()
        batch = self.pool.decode(worker_id, message)
        times = message.times.with_transport(time.perf_counter() - decode_start)
        self._fill()
        return Made(batch, times, worker_id)

    def _receive(self, worker_id: int, message: Reply) -> None:
        self.inflight.jobs[worker_id].pop((message.generation, message.index), None)
        if message.generation != self.generation and message.generation >= 0:
            if isinstance(message, Done):
                self.pool.discard(worker_id, message)
            return
        if isinstance(message, Failed) and message.index < 0:
            self.healthy = False  # the worker is gone: a persistent pool must be replaced
            raise rebuild_exception(message)  # failed before any batch (worker_init_fn)
        self._ready[message.index] = (worker_id, message)

    def _timeout_error(self, waited: float) -> WorkerTimeoutError:
        owner = self.inflight.owner(self.generation, self._next)
        who = f"{self.pool.kind} worker {owner}" if owner is not None else "the workers"
        return WorkerTimeoutError(
            f"DataLoader timed out after {waited:.1f} s waiting for batch {self._next} from {who} "
            f"(timeout={self.timeout}). The dataset's __getitem__ or the collate/transform code "
            "is stuck or very slow: check it, or raise timeout"
        )

    def _stall_message(self, waited: float) -> str:
        owner = self.inflight.owner(self.generation, self._next)
        who = f"{self.pool.kind} worker {owner}" if owner is not None else "the workers"
        pids = self.pool.pids
        if owner is not None and owner < len(pids):
            who += f" (pid {pids[owner]}; `py-spy dump --pid {pids[owner]}` shows where it is)"
        return (
            f"DataLoader has waited {waited:.0f} s for batch {self._next} from {who}. If it is stuck "
            "(a deadlock in __getitem__, a lock held across a fork), pass timeout=<seconds> to get an "
            "error instead of waiting forever"
        )

    def abandon(self) -> None:
        """Stop this epoch: results still in flight will be dropped when they arrive."""
        self._exhausted = True
        self._next = self._sent
        for worker_id, message in self._ready.values():
            if isinstance(message, Done):
                self.pool.discard(worker_id, message)
        self._ready.clear()

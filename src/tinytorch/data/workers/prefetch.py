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
from collections.abc import Iterator

from tinytorch.data.fetch.fetcher import BatchTask
from tinytorch.data.fetch.timing import Made
from tinytorch.data.workers.messages import Done, Failed, Reply, rebuild_exception
from tinytorch.data.workers.pool import Pool
from tinytorch.data.workers.replies import Inflight, ReplyWaiter

__all__ = ["OrderedPrefetcher"]


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
        self._waiter = ReplyWaiter(pool, inflight, generation, timeout, "__getitem__")

    @property
    def healthy(self) -> bool:
        """False once a worker timed out or died, or waiting failed: the pool must not be reused."""
        return self._waiter.healthy

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
        self._waiter.until(lambda: self._next in self._ready, self._keep, self._next, between=self._fill)
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

    def _keep(self, worker_id: int, message: Reply) -> None:
        self._ready[message.index] = (worker_id, message)

    def abandon(self) -> None:
        """Stop this epoch: results still in flight will be dropped when they arrive."""
        self._exhausted = True
        self._next = self._sent
        for worker_id, message in self._ready.values():
            if isinstance(message, Done):
                self.pool.discard(worker_id, message)
        self._ready.clear()

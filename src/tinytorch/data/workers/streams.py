"""An ``IterableDataset`` read by workers: each worker its own stream, delivered in a fixed cycle.

Each of the ``n`` workers iterates its own copy of the dataset (the dataset splits itself with
``get_worker_info()``, as in torch). Worker ``w``'s ``j``-th batch is batch ``j * n + w`` of the
epoch (that index keys its randomness). Batches are delivered cycling through the workers in
order, 0, 1, ..., n-1, 0, ...; a worker whose stream ended leaves the cycle and the others go
on in the same order. So for a given seed and worker count the output is deterministic, and
which worker is faster never changes it.

Resuming: :meth:`StreamPrefetcher.state` says how many batches each worker's stream delivered,
which streams ended, and whose turn is next; a prefetcher built with that state restarts each
worker's stream and passes over the batches it had delivered (a stream can only be read from its
start), then continues the cycle where it stopped.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator
from typing import Any

from tinytorch.data.fetch.fetcher import BatchTask
from tinytorch.data.fetch.timing import Made
from tinytorch.data.workers.messages import Done, Exhausted, Failed, Reply, rebuild_exception
from tinytorch.data.workers.pool import Pool
from tinytorch.data.workers.replies import Inflight, ReplyWaiter

__all__ = ["StreamPrefetcher", "StreamState"]

StreamState = dict[str, Any]
"""``{"positions": [batches delivered per worker], "ended": [workers whose stream ended],
"turn": next worker}``: plain JSON values."""


class StreamPrefetcher(Iterator[Made]):
    """Runs the streams of ``pool``'s workers for ``epoch`` and yields their batches in cycle order.

    Args:
        pool: the workers (each iterates its own stream).
        inflight: bookkeeping of unanswered jobs, owned by whoever owns the pool.
        epoch: the epoch (keys the randomness and ``dataset.set_epoch``).
        generation: tags this epoch's jobs; results of other generations are dropped.
        window: jobs in flight per worker (``prefetch_factor``).
        timeout: seconds to wait for the next batch before raising (0 waits forever).
        resume: a :meth:`state` to continue from, or ``None`` to start the streams.
    """

    def __init__(
        self,
        pool: Pool,
        inflight: Inflight,
        epoch: int,
        *,
        generation: int,
        window: int,
        timeout: float,
        resume: StreamState | None = None,
    ) -> None:
        n = pool.num_workers
        self.pool, self.inflight, self.epoch = pool, inflight, epoch
        self.generation, self.window, self.timeout = generation, window, timeout
        state = resume or {"positions": [0] * n, "ended": [], "turn": 0}
        self._delivered = [int(p) for p in state["positions"]]  # per worker
        self._start = list(self._delivered)  # where each stream is restarted
        self._sent = list(self._delivered)  # next local batch to ask each worker for
        ended = {int(w) for w in state["ended"]}
        turn = int(state["turn"])
        self._cycle = collections.deque(w for w in (*range(turn, n), *range(turn)) if w not in ended)
        self._ended = sorted(ended)
        self._ready: dict[int, Reply] = {}  # epoch batch index -> its message
        self._waiter = ReplyWaiter(pool, inflight, generation, timeout, "__iter__")

    @property
    def healthy(self) -> bool:
        """False once a worker timed out or died, or waiting failed: the pool must not be reused."""
        return self._waiter.healthy

    def state(self) -> StreamState:
        """How far every stream got (what :class:`StreamPrefetcher` ``resume=`` takes)."""
        return {
            "positions": list(self._delivered),
            "ended": list(self._ended),
            "turn": self._cycle[0] if self._cycle else 0,
        }

    def _fill(self) -> None:
        n = self.pool.num_workers
        for worker in self._cycle:
            while self._sent[worker] - self._delivered[worker] < self.window:
                j = self._sent[worker]
                first = j == self._start[worker]
                task = BatchTask(self.epoch, j * n + worker, start=self._start[worker] if first else None)
                self.pool.send(worker, self.generation, task)
                self.inflight.jobs[worker][(self.generation, task.index)] = task
                self._sent[worker] += 1

    def __next__(self) -> Made:
        n = self.pool.num_workers
        while self._cycle:
            worker = self._cycle[0]
            index = self._delivered[worker] * n + worker
            self._fill()
            message = self._await(index)
            if isinstance(message, Exhausted):
                self._cycle.popleft()
                self._ended.append(worker)
                self._ended.sort()
                continue
            if isinstance(message, Failed):
                raise rebuild_exception(message)
            self._delivered[worker] += 1
            self._cycle.rotate(-1)
            decode_start = time.perf_counter()
            batch = self.pool.decode(worker, message)
            times = message.times.with_transport(time.perf_counter() - decode_start)
            return Made(batch, times, worker)
        raise StopIteration

    def _await(self, index: int) -> Reply:
        self._waiter.until(lambda: index in self._ready, self._keep, index)
        return self._ready.pop(index)

    def _keep(self, worker_id: int, message: Reply) -> None:
        self._ready[message.index] = message

    def abandon(self) -> None:
        """Stop this epoch: results still in flight will be dropped when they arrive."""
        self._cycle.clear()
        for index, message in self._ready.items():
            if isinstance(message, Done):
                self.pool.discard(index % max(1, self.pool.num_workers), message)
        self._ready.clear()

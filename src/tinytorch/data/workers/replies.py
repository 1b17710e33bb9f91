"""Waiting for workers' replies: one loop for map-style epochs and for streams.

:class:`ReplyWaiter` is what :class:`~tinytorch.data.workers.prefetch.OrderedPrefetcher` and
:class:`~tinytorch.data.workers.streams.StreamPrefetcher` share: wait on the pool in slices of
at most :data:`POLL_SECONDS` (between them the pool checks that its workers are alive) until the
batch wanted has arrived; sort each reply (another epoch's is dropped and its shared block
released; a worker that failed before any batch, in ``worker_init_fn``, raises at once); raise
:class:`~tinytorch.data.workers.errors.WorkerTimeoutError` after ``timeout``; and, when waiting
forever (``timeout=0``), warn once per epoch that a batch is late, naming the worker and how to
see where it is. The two prefetchers differ only in which batch they wait for and where they
keep what arrived.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

from tinytorch.data.fetch.fetcher import BatchTask
from tinytorch.data.workers.errors import WorkerTimeoutError
from tinytorch.data.workers.messages import Done, Failed, Reply, rebuild_exception
from tinytorch.data.workers.pool import Pool

__all__ = ["POLL_SECONDS", "STALL_WARNING_SECONDS", "Inflight", "ReplyWaiter"]

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


class ReplyWaiter:
    """Waits for one epoch's replies from ``pool``.

    Args:
        pool: the workers.
        inflight: bookkeeping of unanswered jobs (shared with the epoch's prefetcher).
        generation: this epoch's tag; replies of other generations are dropped.
        timeout: seconds to wait for a batch before raising (0 waits forever, with a warning
            after :data:`STALL_WARNING_SECONDS`).
        user_code: what the workers run, for the messages (``"__getitem__"``, ``"__iter__"``).
    """

    def __init__(
        self, pool: Pool, inflight: Inflight, generation: int, timeout: float, user_code: str
    ) -> None:
        self.pool, self.inflight, self.generation = pool, inflight, generation
        self.timeout, self.user_code = timeout, user_code
        self.healthy = True
        """False once a worker timed out or died, or waiting failed: the pool must not be reused."""
        self._warned = False

    def until(
        self,
        arrived: Callable[[], bool],
        keep: Callable[[int, Reply], None],
        index: int,
        *,
        between: Callable[[], None] | None = None,
    ) -> None:
        """Wait until ``arrived()``, handing each reply of this epoch to ``keep(worker_id, reply)``.

        Args:
            arrived: whether what the caller waits for is there.
            keep: stores a reply of this epoch.
            index: the batch waited for (for the messages).
            between: called after each slice of waiting (to send jobs that now have room).

        Raises:
            WorkerTimeoutError: ``timeout`` passed.
            Exception: a worker's failure before any batch, rebuilt; or the pool's error (a
                worker died).
        """
        start = time.monotonic()
        while not arrived():
            waited = time.monotonic() - start
            if self.timeout and waited >= self.timeout:
                self.healthy = False
                raise self._timeout_error(index, waited)
            if not self.timeout and waited >= STALL_WARNING_SECONDS and not self._warned:
                self._warned = True
                warnings.warn(self._stall_message(index, waited), RuntimeWarning, stacklevel=4)
            budget = POLL_SECONDS if not self.timeout else min(POLL_SECONDS, self.timeout - waited)
            try:
                answered = self.pool.wait(budget)
            except BaseException:
                self.healthy = False
                raise
            for worker_id, message in answered:
                if self._current(worker_id, message):
                    keep(worker_id, message)
            if between is not None:
                between()

    def _current(self, worker_id: int, message: Reply) -> bool:
        """Whether ``message`` belongs to this epoch (another epoch's is dropped, its block
        released); a worker's failure before any batch raises here, whatever the epoch."""
        self.inflight.jobs[worker_id].pop((message.generation, message.index), None)
        if isinstance(message, Failed) and message.index < 0:
            self.healthy = False  # the worker is gone: a persistent pool must be replaced
            raise rebuild_exception(message)  # failed before any batch (worker_init_fn)
        if message.generation != self.generation:
            if isinstance(message, Done):
                self.pool.discard(worker_id, message)
            return False
        return True

    def _who(self, index: int) -> tuple[str, int | None]:
        owner = self.inflight.owner(self.generation, index)
        return (f"{self.pool.kind} worker {owner}" if owner is not None else "the workers"), owner

    def _timeout_error(self, index: int, waited: float) -> WorkerTimeoutError:
        who, _ = self._who(index)
        return WorkerTimeoutError(
            f"DataLoader timed out after {waited:.1f} s waiting for batch {index} from {who} "
            f"(timeout={self.timeout}). The dataset's {self.user_code} or the collate/transform code "
            "is stuck or very slow: check it, or raise timeout"
        )

    def _stall_message(self, index: int, waited: float) -> str:
        who, owner = self._who(index)
        pids = self.pool.pids
        if owner is not None and owner < len(pids):
            who += f" (pid {pids[owner]}; `py-spy dump --pid {pids[owner]}` shows where it is)"
        return (
            f"DataLoader has waited {waited:.0f} s for batch {index} from {who}. If it is stuck "
            f"(a deadlock in {self.user_code}, a lock held across a fork), pass timeout=<seconds> to "
            "get an error instead of waiting forever"
        )

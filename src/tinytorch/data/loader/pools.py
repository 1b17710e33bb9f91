"""A loader's workers across epochs: two strategies behind one interface, and one epoch's lease.

:class:`PerEpochPools` starts a pool for each epoch and stops it when the epoch ends;
:class:`PersistentPools` keeps one pool for every epoch. Both hand an epoch a :class:`Lease`
(the pool, its in-flight bookkeeping and the epoch's generation tag) and take it back with
whether the epoch ran to its end and whether the pool is still healthy. Neither knows which
kind of pool it holds (``workers.pool.make_pool`` decides).

:class:`WorkerBatches` is one running epoch's batches from workers: it owns the prefetcher and
the lease, and ``close()`` ends both. Rules kept here, in one place:

* **One epoch at a time on persistent workers.** A new ``iter(loader)`` supersedes the running
  epoch: that epoch's next ``next()`` raises a ``RuntimeError`` that says so, never a silent,
  early ``StopIteration``. (Per-epoch pools and ``num_workers=0`` run epochs side by side.)
* **A broken pool is replaced.** After a timeout or a dead worker the pool is stopped (a stuck
  process is killed); the next epoch starts a fresh one instead of failing again.
* **A changed spec means new workers.** Persistent workers run what the loader had when they
  started; when the loader's fetcher changed (``loader.collate_fn = ...``), the next epoch
  starts new workers, so every worker type makes the same bytes for the same settings.
* **Nothing keeps a loader alive.** The loader's garbage-collection safety net holds only the
  pools' stoppers (:meth:`PoolStrategy.stoppers`), which do not refer to the dataset or user
  callbacks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from tinytorch.data.fetch.fetcher import BatchTask
from tinytorch.data.fetch.timing import Made
from tinytorch.data.workers.capacity import available_memory, check_window
from tinytorch.data.workers.loop import PoolSpec
from tinytorch.data.workers.pool import Pool, make_pool
from tinytorch.data.workers.prefetch import OrderedPrefetcher
from tinytorch.data.workers.replies import Inflight

__all__ = [
    "Lease",
    "PerEpochPools",
    "PersistentPools",
    "PoolStrategy",
    "Prefetcher",
    "WorkerBatches",
    "ordered",
    "pool_strategy",
]


@dataclass
class Lease:
    """One epoch's use of a pool: the pool, its unanswered jobs, the epoch's generation tag."""

    pool: Pool
    inflight: Inflight
    generation: int


class Stoppers:
    """The stop functions of the live pools of one loader (what its safety net calls)."""

    def __init__(self) -> None:
        self._live: dict[int, Callable[[], None]] = {}

    def add(self, pool: Pool) -> None:
        self._live[id(pool)] = pool.stopper()

    def remove(self, pool: Pool) -> None:
        self._live.pop(id(pool), None)

    def __call__(self) -> None:
        live, self._live = list(self._live.values()), {}
        for stop in live:
            stop()


class PoolStrategy(Protocol):
    """How a loader gets a pool for each epoch (an extension point; two implementations)."""

    stoppers: Stoppers

    def acquire(self, spec: PoolSpec, epoch: WorkerBatches) -> Lease:
        """A started pool running ``spec`` for ``epoch``."""

    def release(self, lease: Lease, *, exhausted: bool, healthy: bool) -> None:
        """``lease``'s epoch ended; ``exhausted``: it ran to its end; ``healthy``: no worker is
        stuck or dead."""

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers."""

    def close(self) -> None:
        """Stop every worker; a later epoch starts new ones."""

    def retire(self) -> None:
        """No new epoch will come: stop every worker once the running epoch (if any) ends."""


class PerEpochPools:
    """A new pool for each epoch, stopped when the epoch ends.

    When an epoch ran to its end its workers are idle: they are told to stop and the loader's
    side is closed at once, and the exited processes are collected when the next pool starts
    or by :meth:`close` (the next epoch does not wait for their teardown).
    """

    def __init__(self, kind: str, context: Any) -> None:
        self._kind, self._context = kind, context
        self._running: dict[Pool, WorkerBatches] = {}
        self._stopping: list[Pool] = []
        self._generation = 0
        self.stoppers = Stoppers()

    def acquire(self, spec: PoolSpec, epoch: WorkerBatches) -> Lease:
        self._collect(block=False)
        pool = make_pool(self._kind, spec, context=self._context)
        self.stoppers.add(pool)
        pool.start()
        self._running[pool] = epoch
        self._generation += 1
        return Lease(pool, Inflight(pool.num_workers), self._generation)

    def release(self, lease: Lease, *, exhausted: bool, healthy: bool) -> None:
        pool = lease.pool
        if self._running.pop(pool, None) is None:
            return
        idle = exhausted and healthy
        pool.shutdown(wait=not idle)
        if idle:
            self._stopping.append(pool)
        else:
            self.stoppers.remove(pool)

    def _collect(self, *, block: bool) -> None:
        still = []
        for pool in self._stopping:
            if pool.reap(block=block):
                self.stoppers.remove(pool)
            else:
                still.append(pool)
        self._stopping = still

    @property
    def pids(self) -> list[int]:
        return [pid for pool in self._running for pid in pool.pids]

    def retire(self) -> None:
        self._collect(block=False)  # a running epoch's pool stops when its epoch ends, as always

    def close(self) -> None:
        running, self._running = self._running, {}
        for pool, epoch in running.items():
            epoch.supersede(closed=True)
            pool.shutdown()
            self.stoppers.remove(pool)
        self._collect(block=True)


class PersistentPools:
    """One pool for every epoch, until :meth:`close` (or the loader is collected)."""

    def __init__(self, kind: str, context: Any) -> None:
        self._kind, self._context = kind, context
        self._pool: Pool | None = None
        self._inflight: Inflight | None = None
        self._current: WorkerBatches | None = None
        self._generation = 0
        self._retiring = False
        self.stoppers = Stoppers()

    def acquire(self, spec: PoolSpec, epoch: WorkerBatches) -> Lease:
        if self._current is not None:
            self._current.supersede()
        if self._pool is not None and self._pool.spec is not spec:
            self._stop()  # the loader's settings changed: new workers run the new ones
        if self._pool is None:
            pool = make_pool(self._kind, spec, context=self._context)
            self.stoppers.add(pool)
            pool.start()
            self._pool, self._inflight = pool, Inflight(pool.num_workers)
        assert self._inflight is not None
        self._generation += 1
        self._current = epoch
        return Lease(self._pool, self._inflight, self._generation)

    def release(self, lease: Lease, *, exhausted: bool, healthy: bool) -> None:
        if self._current is not None and self._current.lease is lease:
            self._current = None
        if (not healthy or self._retiring) and lease.pool is self._pool:
            self._stop()  # a stuck or dead worker (the next epoch starts a fresh pool), or retired

    def _stop(self) -> None:
        pool, self._pool, self._inflight = self._pool, None, None
        if pool is not None:
            pool.shutdown()
            self.stoppers.remove(pool)

    @property
    def pids(self) -> list[int]:
        return [] if self._pool is None else self._pool.pids

    def retire(self) -> None:
        self._retiring = True
        if self._current is None:
            self._stop()

    def close(self) -> None:
        if self._current is not None:
            self._current.supersede(closed=True)
            self._current = None
        self._stop()


def pool_strategy(kind: str, *, persistent: bool, context: Any) -> PoolStrategy:
    """The strategy for a loader's ``worker_type``, ``persistent_workers`` and start method."""
    return PersistentPools(kind, context) if persistent else PerEpochPools(kind, context)


class Prefetcher(Protocol):
    """Hands back an epoch's batches from a pool (``OrderedPrefetcher``, ``StreamPrefetcher``)."""

    window: int

    @property
    def healthy(self) -> bool:
        """False once a worker timed out or died: the pool must not be reused."""

    def __next__(self) -> Made: ...

    def abandon(self) -> None: ...


def ordered(
    tasks: Iterator[BatchTask], *, window: int, timeout: float, start: int = 0
) -> Callable[[Lease], Prefetcher]:
    """The prefetcher of a map-style epoch: ``tasks`` (numbered from ``start``) in order."""

    def begin(lease: Lease) -> Prefetcher:
        return OrderedPrefetcher(
            lease.pool,
            lease.inflight,
            tasks,
            generation=lease.generation,
            window=window,
            timeout=timeout,
            start=start,
        )

    return begin


class WorkerBatches(Iterator[Made]):
    """One epoch's batches made by workers, in order; owns its prefetcher and its pool lease.

    Args:
        pools: where the pool comes from.
        spec: what the workers run.
        prefetcher: builds the epoch's prefetcher over the leased pool (:func:`ordered` for
            map-style datasets, a ``StreamPrefetcher`` for iterable ones).
    """

    def __init__(
        self, pools: PoolStrategy, spec: PoolSpec, prefetcher: Callable[[Lease], Prefetcher]
    ) -> None:
        self._pools = pools
        self._ended: str | None = None
        self.lease = pools.acquire(spec, self)
        self.prefetcher = prefetcher(self.lease)
        self._check_memory = self.lease.pool.kind == "process"

    def __next__(self) -> Made:
        if self._ended is not None:
            raise RuntimeError(self._ended)
        made = next(self.prefetcher)
        if self._check_memory:  # before the first batch of the epoch is handed out
            self._check_memory = False
            check_window(
                made.batch,
                num_workers=self.lease.pool.num_workers,
                prefetch_factor=self.prefetcher.window,
                available=available_memory(),
            )
        return made

    def supersede(self, *, closed: bool = False) -> None:
        """This epoch's workers were taken by a newer epoch, or the loader was closed."""
        self.prefetcher.abandon()
        self._ended = (
            "this epoch's iterator can no longer be used: DataLoader.close() stopped its workers. "
            "Start a new epoch with iter(loader)"
            if closed
            else "this epoch's iterator was superseded by a newer iter(loader): persistent workers "
            "run one epoch at a time, so the older epoch cannot go on. Finish or close() an epoch "
            "before starting the next, or use persistent_workers=False to run epochs side by side"
        )

    def close(self, exhausted: bool) -> None:
        """End the epoch: drop unanswered jobs, return the lease (``exhausted``: ran to its end)."""
        self.prefetcher.abandon()
        self._pools.release(self.lease, exhausted=exhausted, healthy=self.prefetcher.healthy)

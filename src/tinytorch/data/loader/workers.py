"""The loader's workers across epochs: start, reuse (persistent), stop on every exit path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from tinytorch.data.fetch.fetcher import BatchTask
from tinytorch.data.fetch.timing import Made, StageTimes
from tinytorch.data.workers.capacity import available_memory, check_window
from tinytorch.data.workers.loop import PoolSpec
from tinytorch.data.workers.prefetch import Inflight, OrderedPrefetcher
from tinytorch.data.workers.process import ProcessPool
from tinytorch.data.workers.thread import ThreadPool

__all__ = ["WorkerSet"]


class WorkerSet:
    """Owns the pool of a DataLoader and hands each epoch a prefetcher over it.

    With ``persistent`` the pool lives until :meth:`close` (or the loader is collected);
    otherwise each epoch starts its own pool and stops it when the epoch ends.
    """

    def __init__(
        self,
        make_batch: Callable[[BatchTask], tuple[Any, StageTimes]],
        dataset: Any,
        *,
        kind: str,
        num_workers: int,
        prefetch_factor: int,
        persistent: bool,
        timeout: float,
        seed: int,
        worker_init_fn: Callable[[int], None] | None,
        context: Any,
    ) -> None:
        self._spec = PoolSpec(make_batch, dataset, num_workers, seed, worker_init_fn)
        self._kind = kind
        self._context = context
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.persistent = persistent
        self.timeout = timeout
        self._pool: ProcessPool | ThreadPool | None = None
        self._inflight: Inflight | None = None
        self._generation = 0
        self._current: OrderedPrefetcher | None = None
        self._checked = False
        self._epoch_pools: list[ProcessPool | ThreadPool] = []
        self._stopping: list[ProcessPool | ThreadPool] = []  # see run(): exiting per-epoch pools

    def _start_pool(self) -> tuple[ProcessPool | ThreadPool, Inflight]:
        self._stopping = [old for old in self._stopping if not old.reap(block=False)]
        pool: ProcessPool | ThreadPool
        if self._kind == "thread":
            pool = ThreadPool(self._spec)
        else:
            pool = ProcessPool(self._spec, context=self._context)
        pool.start()
        return pool, Inflight(self.num_workers)

    def run(self, tasks: Iterator[BatchTask]) -> tuple[Iterator[Made], Callable[[bool], None]]:
        """The batches of ``tasks`` in order, and the function that ends this epoch.

        The function takes whether the epoch ran to its end: then a per-epoch pool's workers,
        idle by now, are left to exit in the background instead of holding up the next epoch.
        """
        if self.persistent:
            if self._current is not None:
                self._current.abandon()  # a new iter() replaces the previous epoch
            if self._pool is None:
                self._pool, self._inflight = self._start_pool()
            pool, inflight = self._pool, self._inflight
        else:
            pool, inflight = self._start_pool()
            self._epoch_pools.append(pool)
        assert inflight is not None
        self._generation += 1
        prefetcher = OrderedPrefetcher(
            pool,
            inflight,
            tasks,
            generation=self._generation,
            window=self.prefetch_factor,
            timeout=self.timeout,
        )
        self._current = prefetcher
        own_pool = None if self.persistent else pool
        return self._checked_batches(prefetcher), lambda exhausted: self._end(prefetcher, own_pool, exhausted)

    def _checked_batches(self, prefetcher: OrderedPrefetcher) -> Iterator[Made]:
        for made in prefetcher:
            if not self._checked and self._kind == "process":
                check_window(
                    made.batch,
                    num_workers=self.num_workers,
                    prefetch_factor=self.prefetch_factor,
                    available=available_memory(),
                )
                self._checked = True
            yield made

    def _end(
        self, prefetcher: OrderedPrefetcher, pool: ProcessPool | ThreadPool | None, exhausted: bool
    ) -> None:
        prefetcher.abandon()
        if self._current is prefetcher:
            self._current = None
        if pool is not None:
            if pool in self._epoch_pools:
                self._epoch_pools.remove(pool)
            pool.shutdown(wait=not exhausted)
            if exhausted:
                self._stopping.append(pool)  # collected when the next pool starts, or by close()

    @property
    def pids(self) -> list[int]:
        """Process ids of the running workers (empty for threads or when stopped)."""
        pools = [*self._epoch_pools, *([self._pool] if self._pool is not None else [])]
        return [pid for pool in pools for pid in pool.pids]

    def close(self) -> None:
        """Stop every worker of this loader; a later epoch starts new ones."""
        pools = [*self._epoch_pools, *([self._pool] if self._pool is not None else [])]
        self._pool, self._inflight, self._current = None, None, None
        self._epoch_pools.clear()
        for pool in pools:
            pool.shutdown()
        for old in self._stopping:  # workers of finished epochs still exiting
            old.reap(block=True)
        self._stopping.clear()

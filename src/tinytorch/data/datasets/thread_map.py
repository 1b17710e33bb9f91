"""``ThreadMap``: a dataset's own thread pool for work that releases the GIL (decoding files).

Lifecycle, explicit and leak-free:

* nothing starts at construction: the threads start with the first :meth:`ThreadMap.map`
  that has more than one item, and only when ``num_threads > 1``;
* :meth:`ThreadMap.close` stops them (waiting for them); garbage collection of the owner
  stops them too (a ``weakref.finalize``, the safety net);
* no thread lives across a ``fork``: before any fork of the process every idle pool is shut
  down (a hook registered once, the first time a pool starts), so a forked worker inherits no
  thread and the parent restarts its threads when it next needs them; a pool is never used
  in a process other than the one that started it;
* pickling (spawned workers) carries the setting, never the threads.

``num_threads=None`` means "decide where the work runs" (:func:`default_num_threads`): the
count is resolved in the process that decodes, so a dataset built in the loading process and
copied into process workers does not give every worker as many threads as the machine has
cores.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from tinytorch.data.cpus import available_cores
from tinytorch.data.worker_info import get_worker_info

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

__all__ = ["ThreadMap", "default_num_threads"]

T = TypeVar("T")
R = TypeVar("R")

_LIVE: weakref.WeakSet[ThreadMap] = weakref.WeakSet()
_HOOK_LOCK = threading.Lock()
_hook_registered = False


def default_num_threads() -> int:
    """Threads for decoding where none were asked for: the cores this process may use, at most
    8; in a loader's process worker, its share of them (``cores // num_workers``, at least 1).

    Every process worker decodes its own batches, so ``num_workers`` processes with a thread
    per core each would run ``num_workers x cores`` decoders on ``cores`` cores: with 2 process
    workers on 2 cores, one thread each read 10,000 CIFAR-10 JPEGs 17-18% faster than two each
    (``bench_images.py --task a``; docs/benchmarks.md). Thread workers share the dataset, and so
    one pool of threads, which keeps the full count.
    """
    cores = available_cores()
    info = get_worker_info()
    if info is not None and info.kind == "process":
        cores = max(1, cores // max(1, info.num_workers))
    return min(8, cores)


class ThreadMap:
    """Maps a function over a batch's items in ``num_threads`` threads, in order.

    Args:
        num_threads: ``0`` or ``1``: run in the calling thread (no pool at all). ``None``:
            :func:`default_num_threads`, resolved in each process that maps (see the module
            docstring).

    The function must be thread-safe; the threads help only when it releases the GIL (file
    reads and decoders do). Results come back in the items' order whatever the scheduling,
    so the output does not depend on the number of threads.
    """

    def __init__(self, num_threads: int | None) -> None:
        self.num_threads = num_threads
        self._resolved: tuple[int, int] | None = None  # (pid, count) for num_threads=None
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._pid = 0
        self._finalizer: weakref.finalize[Any, Any] | None = None

    @property
    def threads(self) -> int:
        """The threads :meth:`map` uses in this process (``num_threads``, or its default here)."""
        if self.num_threads is not None:
            return self.num_threads
        pid = os.getpid()
        if self._resolved is None or self._resolved[0] != pid:
            self._resolved = (pid, default_num_threads())
        return self._resolved[1]

    @property
    def running(self) -> bool:
        """Whether this process has started threads that :meth:`close` has not stopped."""
        return self._executor is not None and self._pid == os.getpid()

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``[fn(x) for x in items]``, the items split into contiguous chunks among the threads.

        An exception from ``fn`` propagates (the earliest chunk's first); functions that must
        report per item should return their failures instead of raising.
        """
        threads = self.threads
        if threads <= 1 or len(items) <= 1:
            return [fn(x) for x in items]
        # A few chunks per thread balance uneven files without a future per item (~20 us each).
        chunks = min(len(items), 4 * threads)
        bounds = [len(items) * k // chunks for k in range(chunks + 1)]

        def run(k: int) -> list[R]:
            return [fn(x) for x in items[bounds[k] : bounds[k + 1]]]

        with self._lock:
            executor = self._start()
            futures = [executor.submit(run, k) for k in range(chunks)]
        out: list[R] = []
        for future in futures:
            out.extend(future.result())
        return out

    def _start(self) -> ThreadPoolExecutor:
        """The executor of this process, started if needed (caller holds ``_lock``)."""
        if self._executor is not None and self._pid == os.getpid():
            return self._executor
        # Absent, closed, or inherited through a fork (its threads do not exist here): new one.
        from concurrent.futures import ThreadPoolExecutor  # imported with the first pool, not before

        _register_fork_hook()
        executor = ThreadPoolExecutor(self.threads, thread_name_prefix="tinytorch-decode")
        self._executor, self._pid = executor, os.getpid()
        self._finalizer = weakref.finalize(self, _shutdown, executor)
        _LIVE.add(self)
        return executor

    def close(self) -> None:
        """Stop the threads (waiting for running work). Idempotent; the pool restarts if used again."""
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        executor, self._executor = self._executor, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if executor is not None and self._pid == os.getpid():
            executor.shutdown(wait=True)

    def __getstate__(self) -> dict[str, Any]:
        return {"num_threads": self.num_threads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["num_threads"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"ThreadMap(num_threads={self.num_threads}, threads={self.threads}, running={self.running})"


def _shutdown(executor: ThreadPoolExecutor) -> None:
    executor.shutdown(wait=False)


def _register_fork_hook() -> None:
    global _hook_registered
    with _HOOK_LOCK:
        if not _hook_registered and hasattr(os, "register_at_fork"):
            os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
            _hook_registered = True


def _before_fork() -> None:
    """Stop every idle pool of this process, so no decode thread is alive at the fork."""
    for pool in list(_LIVE):
        if pool._lock.acquire(blocking=False):  # a pool in use by another thread is left running
            try:
                if pool.running:
                    pool._stop()
            finally:
                pool._lock.release()


def _after_fork_in_child() -> None:
    """A pool whose lock another thread held at the fork must not stay locked in the child."""
    for pool in list(_LIVE):
        pool._lock = threading.Lock()
        pool._executor = None

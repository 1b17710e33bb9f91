"""The extension point every kind of worker implements: a :class:`Pool`, and the one factory.

A pool runs the worker loop (:mod:`tinytorch.data.workers.loop`) in ``num_workers`` threads or
processes. Its lifecycle is part of the protocol, so code that owns a pool (the loader's pool
strategies) never needs to know which kind it holds:

``start()`` -> any number of ``send`` / ``wait`` / ``decode`` / ``discard`` -> ``shutdown()``
(-> ``reap()`` for workers left to exit in the background).

:meth:`Pool.stopper` returns what stops the workers *without* the pool: a callable that holds
the processes, pipes and queues but not the :class:`PoolSpec` (dataset, collate function,
user callbacks). A loader's garbage-collection safety net holds only stoppers, so a user
callback that refers back to the loader's owner (``collate_fn=self.collate``) does not keep
the loader, and with it the workers, alive.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from tinytorch.data.fetch.fetcher import BatchTask
from tinytorch.data.workers.loop import PoolSpec
from tinytorch.data.workers.messages import Done, Reply

__all__ = ["Pool", "make_pool"]


class Pool(Protocol):
    """``num_workers`` workers making batches for the loader.

    ``send``/``wait``/``decode``/``discard`` are called from one thread (the consumer's).
    """

    num_workers: int
    kind: str
    spec: PoolSpec

    def start(self) -> None:
        """Start the workers (or the first of them; see ``ProcessPool.start``)."""

    def send(self, worker_id: int, generation: int, task: BatchTask) -> None:
        """Ask worker ``worker_id`` to make ``task``; ``generation`` tags the epoch."""

    def wait(self, timeout: float | None) -> list[tuple[int, Reply]]:
        """Messages that arrived within ``timeout`` seconds (possibly none).

        Raises:
            WorkerDiedError: a worker exited without being asked to.
        """

    def decode(self, worker_id: int, message: Done) -> Any:
        """The batch a ``Done`` message carries."""

    def discard(self, worker_id: int, message: Done) -> None:
        """Free what a ``Done`` message holds without reading it (a stale result)."""

    @property
    def pids(self) -> list[int]:
        """Process ids of running worker processes (empty for threads)."""

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop every worker; ``wait=False`` leaves idle workers to exit in the background."""

    def reap(self, *, block: bool) -> bool:
        """Collect workers left exiting by ``shutdown(wait=False)``; ``True`` once none is left."""

    def stopper(self) -> Callable[[], None]:
        """A callable that shuts the workers down and holds no reference to :attr:`spec`."""


def make_pool(kind: str, spec: PoolSpec, *, context: Any = None) -> Pool:
    """A pool of ``kind`` (``"process"`` or ``"thread"``) over ``spec``, not started yet.

    Args:
        kind: the loader's ``worker_type``.
        spec: what the workers run.
        context: the multiprocessing context or start method for process workers.
    """
    if kind == "thread":
        from tinytorch.data.workers.thread import ThreadPool

        return ThreadPool(spec)
    from tinytorch.data.workers.process import ProcessPool

    return ProcessPool(spec, context=context)

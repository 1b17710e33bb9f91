"""One epoch of a loader: planning its tasks, and the iterator that delivers its batches.

Kept apart from ``DataLoader`` so the rules of one pass (planning, range checks, batch
numbering, shutdown on every exit path) are small and testable on their own.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tinytorch.data.fetch.fetcher import BatchTask, IterableFetcher
from tinytorch.data.fetch.timing import Made, StageTimes
from tinytorch.data.loader.stats import StatsRecorder
from tinytorch.data.sampling.batching import plan_batches, plan_samples
from tinytorch.data.seeding import global_rngs_seeded

__all__ = ["Epoch", "in_process", "iterable_batches", "plan_tasks"]


def plan_tasks(
    index_source: Iterable[Any], epoch: int, *, batched: bool, dataset_length: int, trusted: bool = False
) -> Iterator[BatchTask]:
    """The tasks of ``epoch`` in order, with every index checked against the dataset.

    Args:
        index_source: the batch sampler (``batched``) or the sampler.
        epoch: the epoch to plan.
        batched: whether ``index_source`` yields batches of indices.
        dataset_length: ``len(dataset)``.
        trusted: the indices come from a sampler the loader built over this very dataset, so
            they are in range by construction and are not checked again per batch.

    Raises:
        IndexError: an index outside ``[-n, n)``, naming the sampler, batch and epoch.
    """
    plan = plan_batches(index_source, epoch) if batched else plan_samples(index_source, epoch)
    n = dataset_length
    for k, indices in enumerate(plan):
        if not trusted and indices.size and not (-n <= indices.min() and indices.max() < n):
            bad = indices[(indices < -n) | (indices >= n)]
            raise IndexError(
                f"the {type(index_source).__name__} produced index {int(bad[0])} in batch {k} of "
                f"epoch {epoch}, but the dataset has {n} samples (valid: 0 to {n - 1}); build the "
                "sampler over this dataset"
            )
        yield BatchTask(epoch, k, indices)


def iterable_batches(fetcher: IterableFetcher, epoch: int) -> Iterator[Made]:
    """Batches of an ``IterableDataset`` stream, in stream order, until it is exhausted.

    Each batch is read with the global RNGs seeded for it and restored afterwards (see
    :func:`in_process`).
    """
    k = 0
    while True:
        start = time.perf_counter()
        try:
            with global_rngs_seeded(fetcher.seed, epoch, k):
                batch = fetcher(epoch, k)
        except StopIteration:
            return
        yield Made(batch, StageTimes(read=time.perf_counter() - start))
        k += 1


def in_process(
    make: Callable[[BatchTask], tuple[Any, StageTimes]], tasks: Iterator[BatchTask], *, seed: int
) -> Iterator[Made]:
    """Make every task in the calling thread.

    Each batch is made with numpy's, Python's and torch's global generators seeded from
    ``(seed, epoch, batch index)``, exactly as a process worker seeds them, and restored
    afterwards: code that draws from them in ``__getitem__`` gives the same bytes as with process
    workers, and the user's own global state is as it was between batches.
    """
    for task in tasks:
        with global_rngs_seeded(seed, task.epoch, task.index):
            batch, times = make(task)
        yield Made(batch, times)


class Epoch(Iterator[Any]):
    """The iterator ``iter(loader)`` returns: batches of one epoch, in order.

    Args:
        batches: produces the batches as :class:`Made` (in-process or from workers).
        epoch: the epoch number.
        length: batches in the epoch when known (for ``len()``).
        finish: called exactly once when the epoch ends for any reason: exhausted, an
            exception, ``close()``, ``break`` (garbage collection) or interpreter exit; its
            argument says whether the epoch ran to its end.
        deliver: applied to each batch in the consuming thread (e.g. pinning memory).
        owner: the loader, kept alive as long as the epoch is.
        recorder: collects the epoch's statistics, or ``None`` when they are off.
    """

    def __init__(
        self,
        batches: Iterator[Made],
        epoch: int,
        *,
        length: int | None,
        finish: Callable[[bool], None] | None = None,
        deliver: Callable[[Any], Any] | None = None,
        owner: object = None,
        recorder: StatsRecorder | None = None,
    ) -> None:
        self._recorder = recorder
        self.epoch = epoch
        self._owner = owner  # keeps the loader (and its workers) alive while the epoch runs
        self._batches = batches
        self._length = length
        self._deliver = deliver
        self._finalizer = weakref.finalize(self, finish, False) if finish is not None else None
        self._done = False

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        recorder = self._recorder
        asked_at = recorder.before_next() if recorder is not None else 0.0
        try:
            made = next(self._batches)
        except StopIteration:
            if recorder is not None:
                recorder.finish()
            self._done = True
            # Ran to its end: finish(True) instead of the finalizer's finish(False), once.
            pending = self._finalizer.detach() if self._finalizer is not None else None
            if pending is not None:
                _, finish, _, _ = pending
                finish(True)
            raise
        except BaseException:  # worker failures, KeyboardInterrupt alike
            self.close()
            raise
        if recorder is not None:
            recorder.delivered(asked_at, made)
        return self._deliver(made.batch) if self._deliver is not None else made.batch

    def __len__(self) -> int:
        if self._length is None:
            raise TypeError("this epoch's length is unknown: the sampler or dataset has no len()")
        return self._length

    def close(self) -> None:
        """End the epoch now; stops workers that belong to it. Later ``next()`` calls stop."""
        self._done = True
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> Epoch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

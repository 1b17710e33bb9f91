"""One epoch of a loader: planning its tasks, and the iterator that delivers its batches.

Kept apart from ``DataLoader`` so the rules of one pass (planning, range checks, batch
numbering, shutdown on every exit path) are small and testable on their own.
"""

from __future__ import annotations

import itertools
import types
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from tinytorch.data.fetch.fetcher import BatchTask, StreamExhausted, StreamFetcher
from tinytorch.data.fetch.timing import Made, StageTimes
from tinytorch.data.loader.stats import StatsRecorder
from tinytorch.data.sampling.batching import plan_batches, plan_samples
from tinytorch.data.sampling.samplers import IndexArray
from tinytorch.data.seeding import (
    borrow_global_rngs,
    return_global_rngs,
    seed_global_rngs,
    users_global_rngs,
)

__all__ = ["Epoch", "EpochProgress", "in_process", "plan_tasks", "stream_batches"]


def plan_tasks(
    index_source: Iterable[Any],
    epoch: int,
    *,
    batched: bool,
    dataset_length: int | None,
    trusted: bool = False,
    start: int = 0,
) -> Iterator[BatchTask]:
    """The tasks of ``epoch`` in order from task ``start`` on, every index checked against the dataset.

    Args:
        index_source: the batch sampler (``batched``) or the sampler.
        epoch: the epoch to plan.
        batched: whether ``index_source`` yields batches of indices.
        dataset_length: ``len(dataset)``; ``None`` for a dataset without one (read with your
            sampler's indices, as torch allows): its ``__getitem__`` judges them.
        trusted: the indices come from a sampler the loader built over this very dataset, so
            they are in range by construction and are not checked again per batch.
        start: the first task wanted (resuming): tasks before it are not made, and nothing is
            read for them.

    Raises:
        IndexError: an index outside ``[-n, n)``, naming the sampler, batch and epoch.
        TypeError, ValueError: the sampler produced something that is not an index.
    """
    if batched:
        plan: Iterator[tuple[IndexArray, bool]] = (
            (indices, False) for indices in plan_batches(index_source, epoch, start=start)
        )
    else:
        plan = plan_samples(index_source, epoch, start=start)
    n = dataset_length
    for k, (indices, bulk) in enumerate(plan, start):
        if n is not None and not trusted and indices.size and not (-n <= indices.min() and indices.max() < n):
            bad = indices[(indices < -n) | (indices >= n)]
            raise IndexError(
                f"the {type(index_source).__name__} produced index {int(bad[0])} in batch {k} of "
                f"epoch {epoch}, but the dataset has {n} samples (valid: 0 to {n - 1}); build the "
                "sampler over this dataset"
            )
        yield BatchTask(epoch, k, indices, bulk)


def stream_batches(
    fetcher: StreamFetcher, epoch: int, *, start: int = 0, seed_globals: bool = True
) -> Iterator[Made]:
    """Batches of an ``IterableDataset`` read in the calling thread, in stream order, to its end.

    ``start``: batches a resumed run had delivered; the stream is read past them first. The
    global generators are seeded per batch while the epoch runs (see :func:`in_process`).
    """
    k = start
    streams: dict[Any, Any] = {}  # this epoch's own stream: two epochs side by side never share one
    token = borrow_global_rngs() if seed_globals else None
    try:
        while True:
            task = BatchTask(epoch, k, start=start if k == start else None)
            if seed_globals:
                seed_global_rngs(fetcher.seed, epoch, k)
            try:
                batch, times = fetcher.make(task, streams)
            except StreamExhausted:
                return
            yield Made(batch, times)
            k += 1
    finally:
        if token is not None:
            return_global_rngs(token)


def in_process(
    make: Callable[[BatchTask], tuple[Any, StageTimes]],
    tasks: Iterator[BatchTask],
    *,
    seed: int | None,
    plan_with_users_rngs: bool = True,
) -> Iterator[Made]:
    """Make every task in the calling thread.

    With ``seed``, each batch is made with numpy's, Python's and torch's global generators seeded
    from ``(seed, epoch, batch index)``, exactly as a process worker seeds them: code that draws
    from them in ``__getitem__`` gives the same bytes as with process workers. The generators are
    the user's: their state from before the epoch is saved when it starts and comes back when it
    ends (ran out, raised, was closed or dropped); between batches they are where the last batch
    left them, so the training loop's own draws there are reproducible too. ``None``: nothing that
    makes a batch draws from them (only this library's code), so they are left alone.

    ``plan_with_users_rngs`` (a sampler of the user's): tasks are planned with the user's
    state in place (:func:`~tinytorch.data.seeding.users_global_rngs`), so a sampler that
    shuffles with the global generators (``torch.randperm``, ``np.random.permutation``) when its
    iteration starts, or draws an index at a time (``np.random.randint``), draws from the
    user's stream and advances it, as with workers and torch: the same order with any
    ``num_workers`` and after a resume. Planned with the state the last batch left, every epoch
    had the same order, and the second batch on differed from the workers'. Putting the state in
    place and taking it back costs ~60 µs, so :data:`PLAN_AHEAD` tasks are planned at a time, as
    workers plan ahead of their window.
    """
    if seed is None:
        for task in tasks:
            batch, times = make(task)
            yield Made(batch, times)
        return
    token = borrow_global_rngs()
    try:
        planned = _planned_with_users_rngs(tasks, token) if plan_with_users_rngs else tasks
        for task in planned:
            seed_global_rngs(seed, task.epoch, task.index)
            batch, times = make(task)
            yield Made(batch, times)
    finally:
        return_global_rngs(token)


PLAN_AHEAD = 16
"""Tasks an in-process epoch plans at a time with the user's global generators in place."""


def _planned_with_users_rngs(tasks: Iterator[BatchTask], token: object) -> Iterator[BatchTask]:
    """``tasks``, planned :data:`PLAN_AHEAD` at a time with the user's generators in place. An
    error of the sampler is raised after the tasks planned before it have been made, as when
    planning one task at a time."""
    while True:
        chunk: list[BatchTask] = []
        error: Exception | None = None
        with users_global_rngs(token):
            try:
                chunk.extend(itertools.islice(tasks, PLAN_AHEAD))
            except Exception as e:
                error = e
        yield from chunk
        if error is not None:
            raise error
        if len(chunk) < PLAN_AHEAD:
            return


@dataclass
class EpochProgress:
    """How far an epoch got, from the consumer's side (what ``DataLoader.state_dict`` saves).

    Attributes:
        epoch: the epoch.
        delivered: batches handed to the consumer, counting those a resumed run had delivered.
        finished: the epoch ran to its end.
        streams: for an iterable dataset read by workers, what tells each stream's position.
    """

    epoch: int
    delivered: int = 0
    finished: bool = False
    streams: Any = None


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
        progress: counts the batches delivered (for resuming), or ``None``.
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
        progress: EpochProgress | None = None,
    ) -> None:
        self._recorder = recorder
        self._progress = progress
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
            if self._progress is not None:
                self._progress.finished = True
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
        if self._progress is not None:
            self._progress.delivered += 1
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
        if isinstance(self._batches, types.GeneratorType):
            # In-process epochs: ends them now (their finally gives the global generators back)
            # instead of when the iterator is garbage-collected.
            self._batches.close()

    def __enter__(self) -> Epoch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

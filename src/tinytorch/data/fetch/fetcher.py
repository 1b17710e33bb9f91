"""Turning a planned batch into data: read the samples, collate, transform.

A :class:`BatchTask` says which batch to make; a fetcher makes it. The same
fetcher object runs in the calling process, in a worker thread or in a worker
process, so the batch bytes cannot depend on where it ran: everything random
is derived from the task's ``(seed, epoch, index)`` through the batch context.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.datasets.base import Dataset, read_batch
from tinytorch.data.datasets.stacked import StackedSamples
from tinytorch.data.fetch.timing import StageTimes
from tinytorch.data.seeding import BatchContext, batch_context, seed_global_rngs
from tinytorch.data.worker_info import get_worker_info

__all__ = ["BatchTask", "BatchTransform", "MapFetcher", "StreamExhausted", "StreamFetcher"]

BatchTransform = Callable[[Any, np.random.Generator], Any]
"""``batch_transform(batch, rng) -> batch``: applied to each collated batch."""


_NO_INDICES: NDArray[np.int64] = np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class BatchTask:
    """Which batch to make.

    Attributes:
        epoch: the epoch (keys the randomness).
        index: the batch's position in the epoch, 0-based (keys the randomness). For a stream
            read by ``n`` workers, batch ``j`` of worker ``w`` is ``j * n + w``.
        indices: dataset indices, 1-D integers (int32 or int64), for map-style datasets; with
            batching off, one index, or the list a sampler yielded (``bulk``). Empty for streams.
        bulk: batching is off and the sampler yielded a list of indices: ``dataset[list]``
            reads them in one call (torch's bulk loading).
        start: streams only. ``None``: the next batch of the worker's stream. An int: the
            worker's first task of the epoch: start ``iter(dataset)`` anew and pass over
            ``start`` batches first (0, or the batches a resumed run had delivered).
    """

    epoch: int
    index: int
    indices: NDArray[np.integer[Any]] = field(default_factory=lambda: _NO_INDICES)
    bulk: bool = False
    start: int | None = None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Sent to a process worker with every job: raw bytes pickle in half the time of an array.
        data = (self.epoch, self.index, self.indices.tobytes(), self.indices.dtype.str, self.bulk, self.start)
        return _task, data


def _task(epoch: int, index: int, data: bytes, dtype: str, bulk: bool, start: int | None) -> BatchTask:
    return BatchTask(epoch, index, np.frombuffer(data, dtype=np.dtype(dtype)), bulk, start)


class MapFetcher:
    """Makes batches of a map-style dataset: ``read_batch`` → ``collate_fn`` → ``batch_transform``.

    Args:
        dataset: the map-style dataset.
        collate_fn: list of samples (or ``StackedSamples``) → batch.
        batched: ``False`` when the loader's ``batch_size`` is ``None``: each
            task is one index and the sample goes through ``collate_fn`` alone.
        seed: the loader's seed.
        batch_transform: optional ``f(batch, rng)``.
        plain_samples: hand ``collate_fn`` a plain ``list`` of samples even when the dataset
            read them at once as ``StackedSamples`` (for a user's ``collate_fn``, which may sort,
            shuffle, concatenate or assign to the list it receives, as torch promises).
    """

    def __init__(
        self,
        dataset: Dataset[Any],
        collate_fn: Callable[[Any], Any],
        *,
        batched: bool,
        seed: int,
        batch_transform: BatchTransform | None = None,
        plain_samples: bool = False,
    ) -> None:
        self.dataset = dataset
        self.collate_fn = collate_fn
        self.batched = batched
        self.seed = seed
        self.batch_transform = batch_transform
        self.plain_samples = plain_samples

    def __call__(self, task: BatchTask) -> Any:
        return self.make(task)[0]

    def make(self, task: BatchTask) -> tuple[Any, StageTimes]:
        """The batch of ``task`` and the seconds each stage took."""
        context = BatchContext(self.seed, task.epoch, task.index, batched=self.batched)
        clock = time.perf_counter
        with batch_context(context):
            start = clock()
            if self.batched:
                samples = read_batch(self.dataset, cast("NDArray[np.intp]", task.indices))
                _check_count(self.dataset, samples, len(task.indices), context.skipped)
                if self.plain_samples and isinstance(samples, StackedSamples):
                    samples = list(samples)
            else:
                context.position = 0
                key = task.indices.tolist() if task.bulk else int(task.indices[0])
                samples = self.dataset[key]
                context.position = None
            read = clock()
            batch = self.collate_fn(samples)
            collated = clock()
            if self.batch_transform is not None:
                batch = self.batch_transform(batch, context.rng)
            done = clock()
        per_sample = context.sample_transform_seconds
        times = StageTimes(
            read - start - per_sample, per_sample, collated - read, done - collated, skipped=context.skipped
        )
        return batch, times


def _check_count(dataset: Any, samples: Any, wanted: int, skipped: int) -> None:
    """A batch read must give one sample per index (fewer only for samples the dataset says it
    left out: ``BatchContext.skipped``); anything else would shift every later field silently."""
    try:
        got = len(samples)
    except TypeError:
        raise TypeError(
            f"{type(dataset).__name__}.__getitems__ returned {type(samples).__name__}, not a sequence of "
            f"samples; it must return one sample per index (a list, or StackedSamples)"
        ) from None
    if got + skipped != wanted:
        left_out = f" ({skipped} left out as skipped)" if skipped else ""
        raise ValueError(
            f"{type(dataset).__name__}.__getitems__ returned {got} samples for {wanted} indices{left_out}; "
            "it must return one sample per index, in order"
        )


class StreamExhausted(Exception):
    """A stream has no batch left for this task (its end, or a short last batch with ``drop_last``)."""


class StreamFetcher:
    """Makes batches from the stream of an ``IterableDataset``, in stream order.

    The same object serves the calling process and every worker. Each worker (each thread, in
    thread workers) iterates its own ``iter(dataset)``, started at the first task of an epoch
    after ``dataset.set_epoch(epoch)`` where the dataset has it (a process worker's copy does
    not see the loading process's call); a dataset splits itself between workers with
    :func:`~tinytorch.data.get_worker_info` (or :func:`~tinytorch.data.split_stream`), as in torch.

    Args:
        dataset: the iterable dataset.
        collate_fn: the samples of a batch (or one sample, without batching) -> batch.
        batch_size: samples per batch, ``None`` for one sample at a time.
        drop_last: a short last batch is not made.
        seed: the loader's seed.
        batch_transform: optional ``f(batch, rng)``.
    """

    def __init__(
        self,
        dataset: Any,
        collate_fn: Callable[[Any], Any],
        *,
        batch_size: int | None,
        drop_last: bool,
        seed: int,
        batch_transform: BatchTransform | None = None,
    ) -> None:
        self.dataset = dataset
        self.collate_fn = collate_fn
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.seed = seed
        self.batch_transform = batch_transform
        self._local = threading.local()  # each worker thread its own streams (see _streams)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_local"}  # a worker starts its own

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def make(
        self, task: BatchTask, streams: dict[Any, Iterator[Any]] | None = None
    ) -> tuple[Any, StageTimes]:
        """The next batch of this reader's stream, and the seconds each stage took.

        Args:
            task: which batch (``task.start`` set: start the stream anew, see :class:`BatchTask`).
            streams: where this reader's stream lives. ``None`` (workers): the calling thread's
                own, so the threads of two pools never share one; an epoch read in the loading
                process passes a dict of its own, so two epochs side by side never share one.

        Raises:
            StreamExhausted: the stream has no (full, with ``drop_last``) batch left.
        """
        clock = time.perf_counter
        start = clock()
        if streams is None:
            streams = self._streams()
        stream = self._stream(task, streams)
        context = BatchContext(self.seed, task.epoch, task.index, batched=self.batch_size is not None)
        with batch_context(context):
            if self.batch_size is None:
                samples = next(stream, _END)
                ended = samples is _END
            else:
                samples = list(islice(stream, self.batch_size))
                ended = not samples or (self.drop_last and len(samples) < self.batch_size)
            if ended:
                _forget(streams, stream)
                raise StreamExhausted
            read = clock()
            batch = self.collate_fn(samples)
            collated = clock()
            if self.batch_transform is not None:
                batch = self.batch_transform(batch, context.rng)
            done = clock()
        return batch, StageTimes(read - start, 0.0, collated - read, done - collated, skipped=context.skipped)

    def _streams(self) -> dict[Any, Iterator[Any]]:
        streams: dict[Any, Iterator[Any]] | None = getattr(self._local, "streams", None)
        if streams is None:
            streams = self._local.streams = {}
        return streams

    def _stream(self, task: BatchTask, streams: dict[Any, Iterator[Any]]) -> Iterator[Any]:
        info = get_worker_info()
        worker = None if info is None else info.id
        if task.start is None:
            running = streams.get(worker)
            if running is None:
                raise StreamExhausted  # this worker's stream ended, or was never started
            return running
        if info is not None and hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(task.epoch)
        stream: Iterator[Any] = iter(self.dataset)
        streams[worker] = stream
        if task.start:
            self._pass_over(stream, task, task.start, info)
        return stream

    def _pass_over(self, stream: Iterator[Any], task: BatchTask, batches: int, info: Any) -> None:
        """Read past the batches a resumed run had delivered, each as it was read then: in its
        batch context and, outside thread workers, with the global RNGs seeded for it (a stream
        drawing from them while it reads gives the same samples). Nothing is collated."""
        size = 1 if self.batch_size is None else self.batch_size
        readers = 1 if info is None else info.num_workers
        first = task.index - batches * readers  # this reader's batch 0: batch j is first + j * readers
        seed_globals = info is None or info.kind != "thread"
        for j in range(batches):
            index = first + j * readers
            with batch_context(
                BatchContext(self.seed, task.epoch, index, batched=self.batch_size is not None)
            ):
                if seed_globals:
                    seed_global_rngs(self.seed, task.epoch, index)
                if len(list(islice(stream, size))) < size:
                    break
        if seed_globals:
            seed_global_rngs(self.seed, task.epoch, task.index)  # as the caller did for this batch


def _forget(streams: dict[Any, Iterator[Any]], stream: Iterator[Any]) -> None:
    """Drop a stream that ended (its files, if it holds any, can be closed)."""
    for worker, known in list(streams.items()):
        if known is stream:
            del streams[worker]


_END = object()
"""Marks the end of a stream read one sample at a time."""

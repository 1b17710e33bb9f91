"""Turning a planned batch into data: read the samples, collate, transform.

A :class:`BatchTask` says which batch to make; a fetcher makes it. The same
fetcher object runs in the calling process, in a worker thread or in a worker
process, so the batch bytes cannot depend on where it ran: everything random
is derived from the task's ``(seed, epoch, index)`` through the batch context.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.datasets.base import Dataset, read_batch
from tinytorch.data.datasets.stacked import StackedSamples
from tinytorch.data.fetch.timing import StageTimes
from tinytorch.data.seeding import BatchContext, batch_context

__all__ = ["BatchTask", "BatchTransform", "IterableFetcher", "MapFetcher"]

BatchTransform = Callable[[Any, np.random.Generator], Any]
"""``batch_transform(batch, rng) -> batch``: applied to each collated batch."""


@dataclass(frozen=True)
class BatchTask:
    """Which batch to make.

    Attributes:
        epoch: the epoch (keys the randomness).
        index: the batch's position in the epoch, 0-based (keys the randomness).
        indices: dataset indices, 1-D int64, for map-style datasets with
            batching; a length-1 array when batching is off.
    """

    epoch: int
    index: int
    indices: NDArray[np.int64]

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Sent to a process worker with every job: raw bytes pickle in half the time of an array.
        return _task, (self.epoch, self.index, self.indices.tobytes(), self.indices.dtype.str)


def _task(epoch: int, index: int, data: bytes, dtype: str) -> BatchTask:
    return BatchTask(epoch, index, np.frombuffer(data, dtype=np.dtype(dtype)))


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
                samples = read_batch(self.dataset, task.indices)
                if self.plain_samples and isinstance(samples, StackedSamples):
                    samples = list(samples)
            else:
                context.position = 0
                samples = self.dataset[int(task.indices[0])]
                context.position = None
            read = clock()
            batch = self.collate_fn(samples)
            collated = clock()
            if self.batch_transform is not None:
                batch = self.batch_transform(batch, context.rng)
            done = clock()
        per_sample = context.sample_transform_seconds
        times = StageTimes(read - start - per_sample, per_sample, collated - read, done - collated)
        return batch, times


class IterableFetcher:
    """Makes batches from the stream of an ``IterableDataset``, in stream order.

    Each call takes the next ``batch_size`` samples (one when ``batch_size``
    is ``None``) and raises ``StopIteration`` when the stream is exhausted;
    a short final batch is dropped when ``drop_last``.
    """

    def __init__(
        self,
        stream: Iterator[Any],
        collate_fn: Callable[[Any], Any],
        *,
        batch_size: int | None,
        drop_last: bool,
        seed: int,
        batch_transform: BatchTransform | None = None,
    ) -> None:
        self.stream = stream
        self.collate_fn = collate_fn
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.seed = seed
        self.batch_transform = batch_transform

    def __call__(self, epoch: int, index: int) -> Any:
        context = BatchContext(self.seed, epoch, index, batched=self.batch_size is not None)
        with batch_context(context):
            if self.batch_size is None:
                batch = self.collate_fn(next(self.stream))
            else:
                samples = list(islice(self.stream, self.batch_size))
                if not samples or (self.drop_last and len(samples) < self.batch_size):
                    raise StopIteration
                batch = self.collate_fn(samples)
            if self.batch_transform is not None:
                batch = self.batch_transform(batch, context.rng)
        return batch

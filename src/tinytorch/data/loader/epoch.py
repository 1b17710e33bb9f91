"""One epoch of a loader: an iterator that makes the planned batches in order.

Kept apart from ``DataLoader`` so the rules of one pass (planning, range
checks, batch numbering, shutdown) are small and testable on their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.fetch.fetcher import BatchTask, IterableFetcher, MapFetcher
from tinytorch.data.sampling.batching import plan_batches, plan_samples

__all__ = ["IterableEpoch", "MapEpoch"]


class MapEpoch(Iterator[Any]):
    """Epoch ``epoch`` over a map-style dataset.

    Args:
        fetcher: makes a batch from a :class:`BatchTask`.
        index_source: the batch sampler (``batched``) or the sampler.
        epoch: the epoch to run.
        batched: whether ``index_source`` yields batches of indices.
        dataset_length: ``len(dataset)``, to reject out-of-range indices early.
        length: batches in the epoch when known (for ``len()``).
    """

    def __init__(
        self,
        fetcher: MapFetcher,
        index_source: Iterable[Any],
        epoch: int,
        *,
        batched: bool,
        dataset_length: int,
        length: int | None,
    ) -> None:
        self.epoch = epoch
        self._fetcher = fetcher
        self._source_name = type(index_source).__name__
        self._plan: Iterator[NDArray[np.int64]] = (
            plan_batches(index_source, epoch) if batched else plan_samples(index_source, epoch)
        )
        self._dataset_length = dataset_length
        self._length = length
        self._next_batch = 0

    def __next__(self) -> Any:
        indices = next(self._plan)
        task = BatchTask(self.epoch, self._next_batch, indices)
        self._check_range(task)
        self._next_batch += 1
        return self._fetcher(task)

    def _check_range(self, task: BatchTask) -> None:
        n = self._dataset_length
        if task.indices.size and not (-n <= task.indices.min() and task.indices.max() < n):
            bad = task.indices[(task.indices < -n) | (task.indices >= n)]
            raise IndexError(
                f"the {self._source_name} produced index {int(bad[0])} in batch {task.index} of "
                f"epoch {task.epoch}, but the dataset has {n} samples (valid: 0 to {n - 1}); "
                "build the sampler over this dataset"
            )

    def __len__(self) -> int:
        if self._length is None:
            raise TypeError(f"this epoch's length is unknown: the {self._source_name} has no len()")
        return self._length

    def close(self) -> None:
        """Stop the epoch; further ``next()`` calls raise ``StopIteration``."""
        self._plan = iter(())


class IterableEpoch(Iterator[Any]):
    """Epoch ``epoch`` over an ``IterableDataset``: batches in stream order."""

    def __init__(self, fetcher: IterableFetcher, epoch: int, *, length: int | None) -> None:
        self.epoch = epoch
        self._fetcher = fetcher
        self._length = length
        self._next_batch = 0
        self._done = False

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        try:
            batch = self._fetcher(self.epoch, self._next_batch)
        except StopIteration:
            self._done = True
            raise
        self._next_batch += 1
        return batch

    def __len__(self) -> int:
        if self._length is None:
            raise TypeError("this epoch's length is unknown: the IterableDataset has no __len__")
        return self._length

    def close(self) -> None:
        """Stop the epoch; further ``next()`` calls raise ``StopIteration``."""
        self._done = True

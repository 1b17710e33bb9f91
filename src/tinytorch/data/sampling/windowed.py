"""The streaming order for sharded data: shards shuffled, samples shuffled within windows.

Pure planning: a function of the shard sizes, the window, the seed and the epoch. Nothing
here reads data; the dataset only has to expose ``shard_starts``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.sampling.samplers import ArraySampler
from tinytorch.data.seeding import Stream, check_seed, derive_rng, fresh_seed
from tinytorch.data.validate import check_int

__all__ = ["WindowedShuffleSampler", "window_chunks", "window_shards", "windowed_order"]


def windowed_order(shard_starts: NDArray[np.int64], window: int, seed: int, epoch: int) -> NDArray[np.int64]:
    """The streaming order of an epoch.

    Args:
        shard_starts: ``(num_shards + 1,)``: first sample index of each shard, then the total.
        window: how many consecutive shards (in the shuffled shard order) are shuffled together.
        seed, epoch: the keys of the order.

    Returns:
        ``(total,)`` int64, a permutation of all sample indices: shards in a random order, and
        samples shuffled within each group of ``window`` consecutive shards of that order.
    """
    parts = list(window_chunks(shard_starts, window, seed, epoch))
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def _shard_windows(
    shard_starts: NDArray[np.int64], window: int, seed: int, epoch: int
) -> tuple[np.random.Generator, list[NDArray[np.int64]]]:
    """The epoch's generator after its first draw (the shard order), and the windows' shards.

    Raises:
        TypeError, ValueError: ``window`` not a positive int, ``seed`` or ``epoch`` not a
            non-negative int (numpy integers accepted).
    """
    window = check_int(window, "window", minimum=1)
    rng = derive_rng(check_seed(seed), Stream.STREAM_ORDER, check_int(epoch, "epoch"))
    shards = rng.permutation(len(shard_starts) - 1)
    return rng, [shards[start : start + window] for start in range(0, len(shards), window)]


def window_shards(
    shard_starts: NDArray[np.int64], window: int, seed: int, epoch: int
) -> list[NDArray[np.int64]]:
    """The shards of each window of the epoch, in reading order."""
    return _shard_windows(shard_starts, window, seed, epoch)[1]


def window_chunks(
    shard_starts: NDArray[np.int64],
    window: int,
    seed: int,
    epoch: int,
    *,
    ahead: Callable[[list[int]], Any] | None = None,
) -> Iterator[NDArray[np.int64]]:
    """:func:`windowed_order` one window at a time (memory for one window only).

    ``ahead``, if given, is called with the next window's shards before each window's indices
    are handed out (the sampler uses it to have them read in the background).
    """
    rng, windows = _shard_windows(shard_starts, window, seed, epoch)
    for k, members in enumerate(windows):
        if ahead is not None and k + 1 < len(windows):
            ahead(windows[k + 1].tolist())
        indices = np.concatenate([np.arange(shard_starts[i], shard_starts[i + 1]) for i in members])
        yield indices[rng.permutation(len(indices))].astype(np.int64)


class WindowedShuffleSampler(ArraySampler):
    """Streaming order over a sharded dataset (anything with ``shard_starts``).

    Use it as the loader's sampler, with the dataset keeping about two windows of shards open
    (with several workers, batches in flight near a window boundary read from two windows)::

        ds = ShardedDataset(directory, max_open_shards=8)
        loader = DataLoader(ds, batch_size=256, sampler=WindowedShuffleSampler(ds, window=4, seed=0))

    Batches that cross from one window to the next touch the last shards of one window and the
    first of the next; within a window, every sample of its ``window`` shards comes exactly once.

    When the loader starts planning a window's batches, the sampler asks a dataset that has
    ``read_ahead(shards)`` to start reading the *next* window's shards in the background, so
    streaming from disk overlaps reading with the work on the current window.
    """

    def __init__(self, dataset: Any, window: int, *, seed: int | None = None) -> None:
        self.dataset = dataset
        self.window = check_int(window, "window", minimum=1)
        self.seed = fresh_seed() if seed is None else check_seed(seed)

    def indices(self, epoch: int) -> NDArray[np.int64]:
        return windowed_order(np.asarray(self.dataset.shard_starts), self.window, self.seed, epoch)

    def index_chunks(self, epoch: int) -> Iterator[NDArray[np.int64]]:
        starts = np.asarray(self.dataset.shard_starts)
        ahead = getattr(self.dataset, "read_ahead", None)
        return window_chunks(starts, self.window, self.seed, epoch, ahead=ahead)

    def __len__(self) -> int:
        return int(self.dataset.shard_starts[-1])

"""The streaming order for sharded data: shards shuffled, samples shuffled within windows.

An epoch's order, for one process or one rank of a distributed job:

1. The shards are put in a random order, the same on every rank:
   ``derive_rng(seed, STREAM_ORDER, epoch).permutation(num_shards)``.
2. That order is read as one stream of samples (each shard's samples in file order), and the
   rank takes the contiguous positions ``[rank * num_samples, (rank + 1) * num_samples)`` of it
   (:meth:`~tinytorch.data.sampling.distributed.Partition.span`; the stream is padded from its
   start or cut to a multiple of the world size as ``DistributedSampler`` does). One process
   takes all of it. The rank's part is a list of *pieces*: whole shards, and record ranges of
   the boundary shards it shares with the neighbouring ranks.
3. Consecutive pieces are grouped ``window`` at a time, and the samples of each window are
   shuffled together with ``derive_rng(seed, STREAM_ORDER, epoch, position)``, where
   ``position`` is the window's first position in the padded stream (unique across ranks).

Each window's shuffle depends on nothing before it, so a rank computes only its own windows,
and a resumed epoch starts at any position without computing the windows it skips.

Pure planning: a function of the shard sizes, the window, the seed, the epoch and the
(world size, rank, drop_last) split. Nothing here reads data; the dataset only has to expose
``shard_starts``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.sampling.distributed import Partition, PartitionedSampler
from tinytorch.data.sampling.samplers import IndexArray, index_dtype
from tinytorch.data.seeding import Stream, check_seed, derive_rng
from tinytorch.data.validate import check_int

__all__ = [
    "Window",
    "WindowedShuffleSampler",
    "plan_windows",
    "window_chunks",
    "windowed_order",
]


@dataclass(frozen=True)
class Window:
    """A group of pieces whose samples are shuffled together.

    Attributes:
        position: the window's first position in the epoch's padded stream; keys its shuffle.
        pieces: ``(shard, first, stop)`` triples: dataset indices ``first..stop`` of ``shard``.
    """

    position: int
    pieces: tuple[tuple[int, int, int], ...]

    @property
    def size(self) -> int:
        """Number of samples (indices) in the window."""
        return sum(stop - first for _, first, stop in self.pieces)

    @property
    def shards(self) -> list[int]:
        """The shards the window reads from, in reading order."""
        return [shard for shard, _, _ in self.pieces]

    def order(self, seed: int, epoch: int, dtype: Any = np.int64) -> IndexArray:
        """The window's samples (dataset indices) in their shuffled order, ``(size,)`` ``dtype``."""
        indices = np.concatenate([np.arange(first, stop, dtype=dtype) for _, first, stop in self.pieces])
        rng = derive_rng(seed, Stream.STREAM_ORDER, epoch, self.position)
        return indices[rng.permutation(len(indices))]


def plan_windows(
    shard_starts: NDArray[np.int64],
    window: int,
    seed: int,
    epoch: int,
    partition: Partition | None = None,
) -> list[Window]:
    """The windows one rank reads in an epoch, in order (module docs, steps 1 to 3).

    Args:
        shard_starts: ``(num_shards + 1,)``: first sample index of each shard, then the total.
        window: pieces (shards) per window, positive.
        seed, epoch: the keys of the order.
        partition: the rank's share; ``None`` for one process reading everything.

    Returns:
        The rank's windows; their sizes add up to ``partition.num_samples(total)``.

    Raises:
        TypeError, ValueError: ``window`` not a positive int, ``seed`` or ``epoch`` not a
            non-negative int (numpy integers accepted).
    """
    window = check_int(window, "window", minimum=1)
    seed, epoch = check_seed(seed), check_int(epoch, "epoch")
    partition = Partition() if partition is None else partition
    starts = np.asarray(shard_starts, dtype=np.int64)
    n = int(starts[-1])
    order = derive_rng(seed, Stream.STREAM_ORDER, epoch).permutation(len(starts) - 1)
    stream_array = np.concatenate(([0], np.cumsum(np.diff(starts)[order])))  # shard k begins here
    shards, stream, begins = order.tolist(), stream_array.tolist(), starts[order].tolist()
    pieces: list[tuple[int, int, int, int]] = []  # (shard, first, stop, padded position)
    for first, stop, padded in partition.span(n):
        k = int(np.searchsorted(stream_array, first, side="right")) - 1
        while k < len(shards) and stream[k] < stop:
            lo, hi = max(first, stream[k]), min(stop, stream[k + 1])
            if hi > lo:
                offset = begins[k] - stream[k]
                pieces.append((shards[k], lo + offset, hi + offset, padded + lo - first))
            k += 1
    return [
        Window(group[0][3], tuple(piece[:3] for piece in group))
        for group in (pieces[i : i + window] for i in range(0, len(pieces), window))
    ]


def window_chunks(
    shard_starts: NDArray[np.int64],
    window: int,
    seed: int,
    epoch: int,
    partition: Partition | None = None,
    *,
    start: int = 0,
    ahead: Callable[[list[int]], Any] | None = None,
) -> Iterator[IndexArray]:
    """:func:`windowed_order` one window at a time (memory for one window only).

    Args:
        shard_starts, window, seed, epoch, partition: as for :func:`plan_windows`.
        start: first position of the rank's order to produce; the windows before it are
            not shuffled at all (resuming costs nothing for the part skipped).
        ahead: if given, called with the next window's shards before each window's indices
            are handed out (the sampler uses it to have them read in the background).

    Yields:
        1-D int32 (or int64 for datasets of 2^31 samples or more) dataset indices.
    """
    windows = plan_windows(shard_starts, window, seed, epoch, partition)
    dtype = index_dtype(int(np.asarray(shard_starts)[-1]))
    begin = 0
    for k, w in enumerate(windows):
        end = begin + w.size
        if end > start:
            if ahead is not None and k + 1 < len(windows):
                ahead(windows[k + 1].shards)
            yield w.order(seed, epoch, dtype)[max(0, start - begin) :]
        begin = end


def windowed_order(
    shard_starts: NDArray[np.int64],
    window: int,
    seed: int,
    epoch: int,
    *,
    num_replicas: int = 1,
    rank: int = 0,
    drop_last: bool = False,
) -> IndexArray:
    """The streaming order of an epoch (for one rank of ``num_replicas``; default: all of it).

    Args:
        shard_starts: ``(num_shards + 1,)``: first sample index of each shard, then the total.
        window: how many consecutive shards (in the shuffled shard order) are shuffled together.
        seed, epoch: the keys of the order.
        num_replicas, rank, drop_last: the rank's share (module docs, step 2).

    Returns:
        ``(num_samples,)`` dataset indices. For one process, a permutation of all sample
        indices: shards in a random order, and samples shuffled within each group of
        ``window`` consecutive shards of that order.
    """
    partition = Partition.of(num_replicas, rank, drop_last, owner="windowed_order")
    starts = np.asarray(shard_starts, dtype=np.int64)
    parts = list(window_chunks(starts, check_int(window, "window", minimum=1), seed, epoch, partition))
    return np.concatenate(parts) if parts else np.empty(0, dtype=index_dtype(int(starts[-1])))


class WindowedShuffleSampler(PartitionedSampler):
    """Streaming order over a sharded dataset (anything with ``shard_starts``).

    Use it as the loader's sampler, with the dataset keeping about two windows of shards open
    (with several workers, batches in flight near a window boundary read from two windows)::

        ds = ShardedDataset(directory, max_open_shards=8)
        loader = DataLoader(ds, batch_size=256, sampler=WindowedShuffleSampler(ds, window=4, seed=0))

    Batches that cross from one window to the next touch the last shards of one window and the
    first of the next; within a window, every sample of its ``window`` shards comes exactly once.

    In a distributed job pass ``num_replicas=`` and ``rank=``: each rank streams its own
    contiguous share of the epoch's shard order, windowed the same way, and every rank gets the
    same number of samples (padding or ``drop_last`` as ``DistributedSampler``; module docs of
    :mod:`tinytorch.data.sampling.distributed`).

    When the loader starts planning a window's batches, the sampler asks a dataset that has
    ``read_ahead(shards)`` to start reading the *next* window's shards in the background, so
    streaming from disk overlaps reading with the work on the current window.

    Args:
        dataset: has ``shard_starts``, ``(num_shards + 1,)`` ints (read each epoch).
        window: shards shuffled together, positive.
        generator: a ``torch.Generator`` standing for ``seed=generator.initial_seed()``.
        seed: the order of epoch ``e`` is a pure function of ``(seed, e)`` and the split;
            ``None`` draws one (recorded as ``.seed``), refused with ``num_replicas > 1``: pass
            the same one on every rank.
        num_replicas, rank: this process's share of a distributed job; both ``None`` (the
            default) reads the whole dataset.
        drop_last: with ``num_replicas``, cut the stream to a multiple of it instead of padding.
    """

    def __init__(
        self,
        dataset: Any,
        window: int,
        *,
        generator: Any = None,
        seed: int | None = None,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
    ) -> None:
        self.dataset = dataset
        self.window = check_int(window, "window", minimum=1)
        self.partition, self.seed = self._split(num_replicas, rank, drop_last, seed, generator)

    def indices(self, epoch: int) -> IndexArray:
        parts = list(self.index_chunks(epoch))
        return np.concatenate(parts) if parts else np.empty(0, dtype=index_dtype(self._total()))

    def index_chunks(self, epoch: int, *, start: int = 0) -> Iterator[IndexArray]:
        starts = np.asarray(self.dataset.shard_starts)
        ahead = getattr(self.dataset, "read_ahead", None)
        start = check_int(start, "start")
        return window_chunks(starts, self.window, self.seed, epoch, self.partition, start=start, ahead=ahead)

    def _total(self) -> int:
        return int(self.dataset.shard_starts[-1])

    def __len__(self) -> int:
        return self.partition.num_samples(self._total())

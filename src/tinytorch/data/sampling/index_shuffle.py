"""A shuffled order computed index by index, in constant memory.

:class:`RandomSampler` stores each epoch's permutation: 4 bytes per sample, which is most of a
streaming job's memory once a dataset has billions of samples. Here position ``i`` of the
epoch's order is ``shuffle(i)``, a keyed bijection of ``[0, n)``, computed for a few thousand
positions at a time (Grain shuffles with the same idea, ``index_shuffle``). The bijection is a
4-round Feistel network on the smallest ``2^(2h) >= n``, with a splitmix-style round function
keyed from ``(seed, epoch)``; positions it maps outside ``[0, n)`` are mapped again (cycle
walking) until they land inside, which keeps it a bijection of ``[0, n)``.

Pure planning: the order is a function of ``(n, seed, epoch)`` and nothing else. In a distributed
job rank ``r`` of ``R`` takes positions ``r, r + R, r + 2R, ...`` of it, padded or cut as
``DistributedSampler`` does (:class:`~tinytorch.data.sampling.distributed.Partition`), so each rank
computes only its own positions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.sampling.distributed import PartitionedSampler
from tinytorch.data.sampling.samplers import IndexArray, index_dtype
from tinytorch.data.seeding import Stream, check_seed, derive_rng
from tinytorch.data.validate import check_int

__all__ = ["IndexShuffleSampler", "index_shuffle"]

_ROUNDS = 4
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _keys(n: int, seed: int, epoch: int) -> tuple[int, NDArray[np.uint64]]:
    half = max(1, (max(n, 2) - 1).bit_length() + 1) // 2  # bits per half: 2^(2*half) >= n
    keys = derive_rng(seed, Stream.INDEX_SHUFFLE, epoch).integers(0, 2**63, _ROUNDS, dtype=np.uint64)
    return half, keys


def _encrypt(x: NDArray[np.uint64], half: int, keys: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """The Feistel bijection of ``[0, 2^(2*half))``, applied elementwise."""
    shift = np.uint64(half)
    mask = np.uint64((1 << half) - 1)
    left, right = x >> shift, x & mask
    for key in keys:
        z = (right + key) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z ^= z >> np.uint64(31)
        left, right = right, left ^ (z & mask)
    out: NDArray[np.uint64] = (left << shift) | right
    return out


def index_shuffle(positions: NDArray[np.integer], n: int, seed: int, epoch: int) -> NDArray[np.int64]:
    """The samples at ``positions`` of epoch ``epoch``'s shuffled order of ``n`` samples.

    Args:
        positions: integers in ``[0, n)``.
        n, seed, epoch: the order's keys.

    Returns:
        int64 array like ``positions``; over all positions ``0..n-1`` it is a permutation.

    Raises:
        TypeError, ValueError: ``n``, ``seed`` or ``epoch`` not a non-negative int (numpy
            integers accepted), or a position outside ``[0, n)`` or not an integer.
    """
    n = check_int(n, "n")
    array = np.asarray(positions)
    if array.dtype.kind not in "iu":
        raise TypeError(f"positions must be integers, got an array of dtype {array.dtype}")
    if array.size and (array.min() < 0 or array.max() >= n):
        raise ValueError(f"positions must lie in [0, {n}), got {int(array.min())} to {int(array.max())}")
    half, keys = _keys(n, check_seed(seed), check_int(epoch, "epoch"))
    x = _encrypt(array.astype(np.uint64), half, keys)
    outside = np.flatnonzero(x >= np.uint64(n))
    while len(outside):  # cycle walking: at most a few rounds, since 2^(2*half) < 4n
        walked = _encrypt(x[outside], half, keys)
        x[outside] = walked
        outside = outside[walked >= np.uint64(n)]
    return x.astype(np.int64)


class IndexShuffleSampler(PartitionedSampler):
    """A random order of ``data_source``'s indices, new each epoch, in constant memory.

    Same role as :class:`RandomSampler` (without replacement), different order: each epoch
    is a keyed bijection computed ``chunk`` positions at a time while the loader plans
    batches, so an epoch's plan never exists in whole (constant memory instead of 4 bytes
    per sample). Use it for random access over data much larger than RAM::

        loader = DataLoader(shards, batch_size=256, sampler=IndexShuffleSampler(shards, seed=0))

    In a distributed job pass ``num_replicas=`` and ``rank=``: rank ``r`` takes positions
    ``r::num_replicas`` of the epoch's order (as ``DistributedSampler`` splits a permutation),
    padded from the start of the order or cut (``drop_last``) so every rank gets
    ``ceil(n / num_replicas)`` (or ``n // num_replicas``) indices.

    Args:
        data_source: anything with ``len()``; its length is read each epoch.
        generator: a ``torch.Generator`` standing for ``seed=generator.initial_seed()``.
        seed: the order of epoch ``e`` is a pure function of ``(len, seed, e)``; ``None`` draws
            one (recorded as ``.seed``), refused with ``num_replicas > 1``: pass the same one on
            every rank.
        chunk: positions computed at a time.
        num_replicas, rank: this process's share of a distributed job; both ``None`` (the
            default) reads the whole dataset.
        drop_last: with ``num_replicas``, cut the order to a multiple of it instead of padding.
    """

    def __init__(
        self,
        data_source: Sized,
        *,
        generator: Any = None,
        seed: int | None = None,
        chunk: int = 1 << 16,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
    ) -> None:
        self.data_source = data_source
        self.partition, self.seed = self._split(num_replicas, rank, drop_last, seed, generator)
        self.chunk = check_int(chunk, "chunk", minimum=1)

    def __len__(self) -> int:
        return self.partition.num_samples(len(self.data_source))

    def indices(self, epoch: int) -> IndexArray:
        parts = list(self.index_chunks(epoch))
        n = len(self.data_source)
        return np.concatenate(parts) if parts else np.empty(0, dtype=index_dtype(n))

    def index_chunks(self, epoch: int, *, start: int = 0) -> Iterator[IndexArray]:
        n = len(self.data_source)
        count = self.partition.num_samples(n)
        for first in range(check_int(start, "start"), count, self.chunk):
            positions = self.partition.strided(n, first, min(count, first + self.chunk))
            yield index_shuffle(positions, n, self.seed, epoch).astype(index_dtype(n))

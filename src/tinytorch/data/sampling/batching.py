"""Grouping indices into batches: ``BatchSampler`` and the pure epoch plan.

:func:`plan_batches` is the one function the loader asks "which indices make
batch k of epoch e?". For this package's samplers the answer is computed as
array slices of one planned order (no per-index Python work); for any other
sampler or batch sampler it iterates the user's object, as PyTorch does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.sampling.samplers import ArraySampler, Sampler
from tinytorch.data.validate import check_bool, check_int

__all__ = ["BatchSampler", "chunk", "plan_batches", "plan_samples", "rebatch"]


class BatchSampler(Sampler):
    """Wraps a sampler to yield lists of ``batch_size`` indices (PyTorch semantics).

    Args:
        sampler: any iterable of indices (a :class:`Sampler` or e.g. a list).
        batch_size: indices per batch, positive int.
        drop_last: drop the final batch if it is smaller than ``batch_size``.
    """

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool) -> None:
        self.sampler = sampler
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        self.drop_last = check_bool(drop_last, "drop_last")

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def batches(self, epoch: int) -> Iterator[NDArray[np.int64]]:
        """The batches of ``epoch`` as int64 arrays (a pure function when the sampler is)."""
        if isinstance(self.sampler, ArraySampler):
            yield from rebatch(self.sampler.index_chunks(epoch), self.batch_size, self.drop_last)
            return
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        batch: list[int] = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield np.asarray(batch, dtype=np.int64)
                batch = []
        if batch and not self.drop_last:
            yield np.asarray(batch, dtype=np.int64)

    def __iter__(self) -> Iterator[list[int]]:  # type: ignore[override]
        for batch in self.batches(self.epoch):
            yield batch.tolist()

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


def chunk(order: NDArray[np.int64], batch_size: int, drop_last: bool) -> Iterator[NDArray[np.int64]]:
    """Consecutive slices of ``order`` of length ``batch_size`` (views, no copies).

    The last slice is shorter when ``len(order)`` is not a multiple of
    ``batch_size``, and dropped when ``drop_last``.
    """
    n = len(order)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


def rebatch(
    pieces: Iterable[NDArray[np.int64]], batch_size: int, drop_last: bool
) -> Iterator[NDArray[np.int64]]:
    """Batches of ``batch_size`` across consecutive pieces of an order (a batch may span two).

    Equal to ``chunk(np.concatenate(pieces), ...)`` without holding the whole order.
    """
    carry = np.empty(0, dtype=np.int64)
    for piece in pieces:
        if len(carry):
            need = batch_size - len(carry)
            carry = np.concatenate([carry, piece[:need]])
            piece = piece[need:]
            if len(carry) < batch_size:
                continue
            yield carry
            carry = np.empty(0, dtype=np.int64)
        full = len(piece) - len(piece) % batch_size
        yield from chunk(piece[:full], batch_size, drop_last=True)
        carry = piece[full:]
    if len(carry) and not drop_last:
        yield carry


def plan_batches(batch_sampler: Iterable[Any], epoch: int) -> Iterator[NDArray[np.int64]]:
    """The index batches of ``epoch``, in order, each a 1-D int64 array.

    Args:
        batch_sampler: a :class:`BatchSampler` (planned as array slices) or any
            iterable of index lists (iterated). Its ``set_epoch`` is called first
            when it has one, as PyTorch users expect of the loader.
        epoch: the epoch to plan.
    """
    if hasattr(batch_sampler, "set_epoch"):
        batch_sampler.set_epoch(epoch)
    if isinstance(batch_sampler, BatchSampler):
        yield from batch_sampler.batches(epoch)
        return
    for batch in batch_sampler:
        yield np.asarray(batch, dtype=np.int64).reshape(-1)


def plan_samples(sampler: Iterable[int], epoch: int) -> Iterator[NDArray[np.int64]]:
    """The indices of ``epoch`` one at a time, each as a length-1 int64 array.

    Used when batching is off (``batch_size=None``).
    """
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
    if isinstance(sampler, ArraySampler):
        yield from sampler.indices(epoch).reshape(-1, 1)
        return
    for index in sampler:
        yield np.array([index], dtype=np.int64)

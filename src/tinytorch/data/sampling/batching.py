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

from tinytorch.data.sampling.samplers import ArraySampler, IndexArray, Sampler
from tinytorch.data.validate import check_bool, check_int

__all__ = ["BatchSampler", "chunk", "index_array", "plan_batches", "plan_samples", "rebatch"]


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

    def batches(self, epoch: int, *, start: int = 0) -> Iterator[IndexArray]:
        """The batches of ``epoch`` from batch ``start`` on, as 1-D integer arrays.

        A pure function when the sampler is. With one of this package's samplers nothing before
        ``start`` is computed beyond what the sampler needs to find its position; any other
        sampler is iterated from its beginning and the first ``start`` batches are passed over
        (indices only: no sample is read).

        Raises:
            TypeError, ValueError: the sampler yielded something that is not an int.
        """
        start = check_int(start, "start")
        if isinstance(self.sampler, ArraySampler):
            chunks = self.sampler.index_chunks(epoch, start=start * self.batch_size)
            yield from rebatch(chunks, self.batch_size, self.drop_last)
            return
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        batch: list[int] = []
        k = 0
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                if k >= start:
                    yield index_array(batch, f"the {type(self.sampler).__name__}")
                batch, k = [], k + 1
        if batch and not self.drop_last and k >= start:
            yield index_array(batch, f"the {type(self.sampler).__name__}")

    def __iter__(self) -> Iterator[list[int]]:  # type: ignore[override]
        for batch in self.batches(self.epoch):
            yield batch.tolist()

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


def chunk(order: IndexArray, batch_size: int, drop_last: bool) -> Iterator[IndexArray]:
    """Consecutive slices of ``order`` of length ``batch_size`` (views, no copies).

    The last slice is shorter when ``len(order)`` is not a multiple of
    ``batch_size``, and dropped when ``drop_last``.
    """
    n = len(order)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


def rebatch(pieces: Iterable[IndexArray], batch_size: int, drop_last: bool) -> Iterator[IndexArray]:
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


def index_array(values: Any, source: str) -> IndexArray:
    """``values`` (a list of indices a sampler produced) as a 1-D int64 array, checked.

    Nothing is coerced: ``1.7`` is not ``1``, ``"3"`` is not ``3``, ``True`` is not ``1``, and
    a nested list is not flattened.

    Raises:
        TypeError: an index is not an integer (named, with ``source``).
        ValueError: the indices are nested (not one flat list).
    """
    try:
        array = np.asarray(values)
    except ValueError as e:  # ragged: [1, [2, 3]]
        raise ValueError(
            f"{source} produced {_shorten(values)}: a batch is one flat list of ints, not a nested one"
        ) from e
    if array.size == 0:
        return np.empty(0, dtype=np.int64)
    if array.dtype.kind not in "iu":
        raise TypeError(
            f"{source} produced {_shorten(values)}: dataset indices must be ints, got {array.dtype} "
            "values. Make the sampler yield ints (numpy integers are fine)"
        )
    if array.ndim != 1:
        raise ValueError(
            f"{source} produced a nested list of indices, shape {array.shape}: a batch is one flat "
            "list of ints. Yield one list per batch"
        )
    if array.dtype.kind == "u" and int(array.max()) > _INT64_MAX:  # would wrap to a negative index
        raise IndexError(f"{source} produced index {int(array.max())}, beyond any dataset's length")
    return array.astype(np.int64, copy=False)


_INT64_MAX = int(np.iinfo(np.int64).max)


def _shorten(values: Any) -> str:
    text = repr(values)
    return text if len(text) <= 60 else text[:57] + "..."


def plan_batches(batch_sampler: Iterable[Any], epoch: int, *, start: int = 0) -> Iterator[IndexArray]:
    """The index batches of ``epoch`` from batch ``start`` on, in order, each a 1-D int array.

    Args:
        batch_sampler: a :class:`BatchSampler` (planned as array slices) or any iterable of
            index lists (iterated; its epoch is the loader's business, set before this is called).
        epoch: the epoch to plan.
        start: the first batch wanted (resuming); earlier ones are not made.

    Raises:
        TypeError, ValueError: the batch sampler yielded indices that are not ints, or nested lists.
    """
    if isinstance(batch_sampler, BatchSampler):
        yield from batch_sampler.batches(epoch, start=start)
        return
    source = f"the {type(batch_sampler).__name__}"
    for k, batch in enumerate(batch_sampler):
        if k >= start:
            yield index_array(batch, source)


def plan_samples(sampler: Iterable[Any], epoch: int, *, start: int = 0) -> Iterator[tuple[IndexArray, bool]]:
    """What each step of ``epoch`` reads when batching is off, from step ``start`` on.

    Yields ``(indices, bulk)``: one index as a length-1 array (``bulk`` False), or, when the
    sampler yields a list of indices, that list (``bulk`` True: ``dataset[list]`` reads it in
    one call, as torch passes it).

    Raises:
        TypeError, ValueError: the sampler yielded something that is neither an int nor a flat
            list of ints.
    """
    if isinstance(sampler, ArraySampler):
        for chunk_ in sampler.index_chunks(epoch, start=start):
            for index in chunk_.reshape(-1, 1):
                yield index, False
        return
    source = f"the {type(sampler).__name__}"
    for k, item in enumerate(sampler):
        if k < start:
            continue
        if isinstance(item, (int, np.integer)) and not isinstance(item, (bool, np.bool_)):
            if not -_INT64_MAX <= int(item) <= _INT64_MAX:
                raise IndexError(f"{source} produced index {int(item)}, beyond any dataset's length")
            yield np.array([item], dtype=np.int64), False
        elif isinstance(item, (list, tuple, np.ndarray, range)):
            yield index_array(item, source), True
        else:
            raise TypeError(
                f"{source} produced {_shorten(item)} ({type(item).__name__}): dataset indices must be "
                "ints, or lists of ints for bulk loading with batch_size=None"
            )

"""Where the arrays of a batch are allocated.

Stages that create a batch's arrays (collation, batch transforms, batch reads) call
:func:`batch_empty` instead of ``numpy.empty``. Outside a worker process it *is*
``numpy.empty``. Inside one, the worker has installed an *arena* for the batch being made
(:func:`allocating_in`): large arrays are then placed directly in the shared-memory blocks the
batch travels in, so a batch that ends in such an array reaches the loading process without
being copied (FFCV and DALI write outputs in place for the same reason). Small arrays, and
anything the arena cannot place, come from ``numpy.empty`` and are copied as before.

What an arena hands out belongs to the batch being made: once the batch is sent, memory that no
array of the batch refers to is reused for later batches. Code in a worker must not keep arrays
from :func:`batch_empty` beyond the batch it makes (the library's own stages never do).

The arena is a context variable set by the worker around each batch: explicit, per thread,
and absent everywhere else.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
from numpy.typing import DTypeLike, NDArray

__all__ = ["Arena", "allocating_in", "batch_empty"]


class Arena(Protocol):
    def empty(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> NDArray[Any]:
        """An uninitialized C-contiguous array of ``shape`` and ``dtype``."""
        ...


_ARENA: contextvars.ContextVar[Arena | None] = contextvars.ContextVar("tinytorch_arena", default=None)


def batch_empty(shape: tuple[int, ...], dtype: DTypeLike) -> NDArray[Any]:
    """``numpy.empty(shape, dtype)``, placed in the batch's shared memory inside a worker process."""
    arena = _ARENA.get()
    if arena is None:
        return np.empty(shape, dtype)
    return arena.empty(tuple(shape), np.dtype(dtype))


@contextlib.contextmanager
def allocating_in(arena: Arena) -> Iterator[Arena]:
    """Within the block, :func:`batch_empty` allocates from ``arena`` (in this thread)."""
    token = _ARENA.set(arena)
    try:
        yield arena
    finally:
        _ARENA.reset(token)

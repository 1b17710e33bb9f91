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

Thread workers use a :class:`RecycledArena`: a batch's large arrays come from buffers that are
reused, most recently freed first, once every array of the batch that used them is garbage.
Allocating and freeing a few megabytes per batch otherwise makes the C allocator hand the pages
back to the system and fault them in again for the next batch (~165 page faults per CIFAR
batch with two thread workers: a third of their time went to the kernel), and a recycled
buffer is still in the cache when it is written again.
"""

from __future__ import annotations

import contextlib
import contextvars
import mmap
import threading
import weakref
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
from numpy.typing import DTypeLike, NDArray

__all__ = ["Arena", "RecycledArena", "allocating_in", "batch_empty"]


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


class RecycledArena:
    """An :class:`Arena` whose buffers are reused once no array refers to them (thread-safe).

    Arrays under ``min_bytes`` come from ``numpy.empty``. A larger array views a buffer of its
    own: each array handed out has a fresh base array over the buffer, and a
    ``weakref.finalize`` on that base returns the buffer when the array and every view of it
    are gone, so a batch the consumer keeps is never overwritten. Free buffers are reused most
    recently freed first (the one most likely still in the cache), a buffer only for arrays
    of at least half its size; at most ``keep`` free buffers are kept, older ones are dropped.
    Buffers are anonymous private mappings advised for transparent huge pages where the
    system allows it (one fault per 2 MiB instead of 512).

    Args:
        min_bytes: smallest array placed in a recycled buffer.
        keep: most free buffers kept for reuse.
    """

    def __init__(self, min_bytes: int = 64 << 10, keep: int = 16) -> None:
        self.min_bytes, self.keep = min_bytes, keep
        self._free: list[mmap.mmap | bytearray] = []  # most recently freed last
        # Reentrant: a garbage collection started while the lock is held may run a release.
        self._lock = threading.RLock()
        self._closed = False

    def empty(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> NDArray[Any]:
        count = int(np.prod(shape, dtype=np.int64))
        nbytes = count * dtype.itemsize
        if nbytes < self.min_bytes:
            return np.empty(shape, dtype)
        buffer = self._take(nbytes)
        base = np.frombuffer(buffer, dtype=dtype, count=count)
        weakref.finalize(base, self._release, buffer)
        return base.reshape(shape)

    def _take(self, nbytes: int) -> mmap.mmap | bytearray:
        with self._lock:
            free = self._free
            for i in range(len(free) - 1, -1, -1):
                if nbytes <= len(free[i]) <= 2 * nbytes:
                    return free.pop(i)
        size = -(-nbytes // mmap.PAGESIZE) * mmap.PAGESIZE
        if not hasattr(mmap, "MAP_PRIVATE"):  # Windows
            return bytearray(size)
        buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if size >= 2 << 20 and hasattr(mmap, "MADV_HUGEPAGE"):
            with contextlib.suppress(OSError):
                buffer.madvise(mmap.MADV_HUGEPAGE)
        return buffer

    def _release(self, buffer: mmap.mmap | bytearray) -> None:
        with self._lock:
            if self._closed:
                return
            self._free.append(buffer)
            if len(self._free) > self.keep:
                del self._free[0]

    @property
    def free_buffers(self) -> int:
        """Buffers waiting to be reused (for tests and monitoring)."""
        return len(self._free)

    def close(self) -> None:
        """Drop the free buffers; buffers still viewed by arrays are freed with their last array."""
        with self._lock:
            self._closed = True
            self._free.clear()

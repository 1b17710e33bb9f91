"""All shards of a dataset mapped back to back in one range of virtual memory (Linux).

Random access over many shards otherwise costs one gather per shard a batch touches. Mapped
into a single address range, every sample of every shard is a byte offset from one base
pointer, and a batch of fixed-size records is read with one fancy-indexing operation over a
view whose rows start at any byte (:func:`gather_records`).

How: reserve the whole range with an inaccessible anonymous mapping, then map each shard
file over its slot with ``MAP_FIXED`` (through ``ctypes``, since Python's ``mmap``
cannot choose an address). Mappings are read-only and filled lazily by page faults: mapping
costs nothing up front, and data larger than RAM is never read in whole. The range is marked
for transparent huge pages, so data read from disk through it lands in the page cache as 2 MiB
folios that are mapped with one page-table entry each (a first random pass over 1 GB is a third
faster: docs/benchmarks.md, "Streaming vs in-memory"). A reader that knows which shards
it is about to use reads them in whole (:meth:`ShardSpan.prefetch`) and drops the page-table
entries of shards it is done with (:meth:`ShardSpan.release`); the
range is unmapped when the span is garbage-collected. Only used on Linux; elsewhere the caller
reads shard by shard.
"""

from __future__ import annotations

import ctypes
import math
import mmap
import os
import sys
import weakref
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided
from numpy.typing import NDArray

__all__ = ["ShardSpan", "SpanError", "gather_records", "record_rows", "span_supported"]

# The same on every Linux architecture; Python's mmap module exports neither.
_MAP_FIXED = 0x10
_PROT_NONE = 0
_MAP_FAILED = ctypes.c_void_p(-1).value
# Slots start on 2 MiB boundaries: the page cache holds file data in folios of up to 2 MiB
# (ext4, xfs, tmpfs), and the kernel maps an aligned one with a single page-table entry: one
# fault maps 2 MiB instead of 64 KiB, and random reads miss the TLB less.
_ALIGN = 2 << 20
_MADV_POPULATE_READ = 22  # Linux 5.14+; Python's mmap module does not name it
_MAX_GRID = 64 << 20


class SpanError(OSError):
    """The span's address range could not be reserved or a shard mapped into it."""


def span_supported() -> bool:
    """Whether shards can be mapped into one range here."""
    return sys.platform == "linux"


def _libc() -> Any:
    libc = ctypes.CDLL(None, use_errno=True)  # symbols of the loaded C library
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    ]
    libc.munmap.restype = ctypes.c_int
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.madvise.restype = ctypes.c_int
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.mincore.restype = ctypes.c_int
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    return libc


def _unmap(libc: Any, base: int, size: int) -> None:
    libc.munmap(base, size)


class ShardSpan:
    """The open shard files ``fds`` (of sizes ``sizes``) mapped consecutively, read-only.

    The caller keeps ownership of ``fds`` (the mappings do not need them open) and must have
    checked each file's size: a mapping longer than its file raises ``SIGBUS`` when read.

    Attributes:
        data: ``(total,)`` uint8 view of the whole range (gaps between shards are
            inaccessible: read only at valid offsets).
        starts: ``(num_shards,)`` int64 byte offset of each shard's first byte in ``data``.

    Raises:
        SpanError: a mapping failed (the caller falls back to per-shard reads).
    """

    def __init__(self, fds: list[int], sizes: list[int], *, record_sizes: tuple[int, ...] = ()) -> None:
        # Slots are 2 MiB-aligned; when it costs little address space they are also multiples
        # of every record size, so records of one field sit on one grid across all shards.
        grid = math.lcm(_ALIGN, *(r for r in record_sizes if r > 0))
        slot = grid if grid <= _MAX_GRID else _ALIGN
        slots = [max(slot, -(-s // slot) * slot) for s in sizes]
        self.starts: NDArray[np.int64] = np.concatenate(([0], np.cumsum(slots)[:-1])).astype(np.int64)
        total = int(sum(slots))
        libc = _libc()
        reserve = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
        reserved = libc.mmap(None, total + _ALIGN, _PROT_NONE, reserve, -1, 0)
        if reserved in (None, _MAP_FAILED):
            code = ctypes.get_errno()
            raise SpanError(code, f"could not reserve {total} bytes of address space: {os.strerror(code)}")
        self._finalizer = weakref.finalize(self, _unmap, libc, reserved, total + _ALIGN)
        self._libc = libc
        self._base = base = -(-reserved // _ALIGN) * _ALIGN
        self._sizes = list(sizes)
        flags = mmap.MAP_SHARED | _MAP_FIXED
        for k, (fd, size, start) in enumerate(zip(fds, sizes, self.starts.tolist(), strict=True)):
            if size == 0:
                continue
            got = libc.mmap(base + start, size, mmap.PROT_READ, flags, fd, 0)
            if got != base + start:
                code = ctypes.get_errno()
                self._finalizer()
                raise SpanError(code, f"could not map shard {k} into the shard span: {os.strerror(code)}")
        # Faults on data not in the page cache then read it in 2 MiB folios, which stay in the
        # cache and are mapped whole by every later reader (ignored where THP is off).
        libc.madvise(base, total, getattr(mmap, "MADV_HUGEPAGE", 14))
        buffer = (ctypes.c_uint8 * total).from_address(base)
        self.data: NDArray[np.uint8] = np.frombuffer(memoryview(buffer).cast("B"), dtype=np.uint8)
        self.data.flags.writeable = False

    def prefetch(self, k: int) -> None:
        """Read shard ``k`` in whole now if it is not in the page cache (``MADV_POPULATE_READ``:
        one sequential pass in 2 MiB folios; ``MADV_WILLNEED`` before Linux 5.14).

        A shard already cached is left alone (checked by sampling 8 pages with ``mincore``):
        its pages are mapped on first touch, 2 MiB at a time."""
        if not self.is_cached(k) and self._advise(k, _MADV_POPULATE_READ) != 0:
            self._advise(k, mmap.MADV_WILLNEED)

    def is_cached(self, k: int, samples: int = 8) -> bool:
        """Whether ``samples`` pages spread over shard ``k`` are all in the page cache."""
        size, page = self._sizes[k], mmap.PAGESIZE
        if not size or not self._finalizer.alive:
            return True
        start = self._base + int(self.starts[k])
        flag = ctypes.create_string_buffer(1)
        for i in range(samples):
            offset = (size - 1) * i // max(1, samples - 1) // page * page
            if self._libc.mincore(start + offset, page, flag) != 0 or not flag.raw[0] & 1:
                return False
        return True

    def release(self, k: int) -> None:
        """Drop this process's page-table entries for shard ``k`` (``MADV_DONTNEED``).

        The data stays in the page cache and reads stay valid: the next touch maps it again.
        """
        self._advise(k, mmap.MADV_DONTNEED)

    def _advise(self, k: int, advice: int) -> int:
        """``madvise`` over shard ``k``; 0 on success (or nothing to do), -1 on failure."""
        if not self._sizes[k] or not self._finalizer.alive:
            return 0
        return int(self._libc.madvise(self._base + int(self.starts[k]), self._sizes[k], advice))

    def close(self) -> None:
        """Unmap the range now (the span must not be used afterwards)."""
        self._finalizer()


def record_rows(
    data: NDArray[np.uint8], first: int, dtype: np.dtype[Any], shape: tuple[int, ...]
) -> NDArray[Any] | None:
    """``data`` from byte ``first`` on as a C-contiguous ``(rows, *shape)`` array of ``dtype``.

    For a field whose records all lie on one grid (see ``record_sizes`` of :class:`ShardSpan`):
    a batch is then ``numpy.take`` of row numbers, which copies whole rows (about 15% faster
    than :func:`gather_records`' byte-offset view). Rows in the gaps between shards must not be
    read. ``None`` where ``first`` is not aligned for ``dtype``.
    """
    record = dtype.itemsize * math.prod(shape)
    if record == 0 or first % dtype.alignment:
        return None
    rows = (len(data) - first) // record
    out: NDArray[Any] = np.ndarray((rows, *shape), dtype=dtype, buffer=data, offset=first)
    return out


# Records up to this size are gathered as opaque items (fast, but numpy holds the GIL while
# copying them); larger ones as byte rows (numpy releases the GIL, so thread workers overlap).
_SMALL_RECORD = 256


def gather_records(
    data: NDArray[np.uint8], offsets: NDArray[np.int64], record_bytes: int
) -> NDArray[np.uint8]:
    """The ``record_bytes`` bytes starting at each of ``offsets`` in ``data``, as ``(n, record_bytes)``.

    One fancy-indexing operation over a read-only view of ``data`` whose items start at every
    byte. Small records are viewed as opaque ``record_bytes``-sized items (one copy each: 2-4x
    faster than rows of bytes for 8-128 byte records, and the GIL is held for microseconds);
    large ones as rows of bytes, which numpy copies with the GIL released.
    """
    count = len(data) - record_bytes + 1
    if record_bytes <= _SMALL_RECORD:
        items: NDArray[np.void] = np.ndarray(
            (count,), dtype=np.dtype((np.void, record_bytes)), buffer=data, strides=(1,)
        )
        return items[offsets].view(np.uint8).reshape(len(offsets), record_bytes)
    rows = as_strided(data, shape=(count, record_bytes), strides=(1, 1), writeable=False)
    return rows[offsets]

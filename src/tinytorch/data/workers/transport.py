"""Moving collated batches from worker processes to the consumer through shared memory.

A batch is split into its array leaves and a small *structure* (the containers, with
placeholders where the arrays were, plus any non-array values). The worker copies the arrays
into a block of anonymous shared memory (``memfd_create``: no file in ``/dev/shm``, so nothing
can be left behind there by a crash) and sends only the structure and the layout; the block's
file descriptor travels once, when the block is new. The consumer maps the block and builds
numpy arrays that view it directly: the array bytes are never pickled. Arrays the worker's
stages allocate with :func:`tinytorch.data.memory.batch_empty` are written in a block to begin
with (the writer is the worker's arena), so a batch ending in such an array is not copied at all.

Block lifetime: every batch the consumer builds holds its block through the arrays' ``base``.
When the last array of a batch is garbage-collected, a finalizer marks the block free and the
next task sent to that worker carries the release, so the worker reuses the block. A batch that
the consumer keeps is therefore never overwritten; a block is reused only when nothing refers
to it any more. Memory is returned to the system when both sides have closed their mappings,
at the latest when the processes exit.

Where ``os.memfd_create`` does not exist (macOS, Windows), batches are pickled instead.
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "BlockReader",
    "BlockWriter",
    "Packed",
    "batch_footprint",
    "flatten",
    "shared_memory_supported",
    "unflatten",
]

ALIGN = 64
INLINE_BYTES = 64 << 10
"""Batches smaller than this travel pickled: cheaper than mapping a block for them."""


def shared_memory_supported() -> bool:
    """Whether batches can travel through anonymous shared memory on this platform."""
    return hasattr(os, "memfd_create")


@dataclass(frozen=True)
class _Leaf:
    index: int


@dataclass(frozen=True)
class ArraySpec:
    """Where one array lies in a block: byte ``offset``, ``dtype`` string and ``shape``."""

    offset: int
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Packed:
    """A batch as sent from a worker.

    Attributes:
        structure: the batch with arrays replaced by placeholders (pickled when sent).
        block: id of the worker's block holding the arrays, or ``None`` when the batch is
            inline (``structure`` then holds the arrays themselves).
        specs: layout of each array in the block.
        nbytes: bytes of the block used by this batch.
        new_block_size: set when the block is new: its size; its file descriptor follows.
    """

    structure: Any
    block: int | None
    specs: tuple[ArraySpec, ...]
    nbytes: int
    new_block_size: int | None = None


def _map_containers(obj: Any, fn: Any) -> Any:
    """``obj`` rebuilt with ``fn`` applied to each child when it is a container (namedtuple,
    list, tuple, mapping: the same type where possible), else ``obj`` itself."""
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(fn(x) for x in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(fn(x) for x in obj)
    if isinstance(obj, Mapping):
        items = {k: fn(v) for k, v in obj.items()}
        return items if type(obj) is dict else _rebuild_mapping(obj, items)
    return obj


def flatten(batch: Any, arrays: list[np.ndarray[Any, Any]]) -> Any:
    """``batch`` with each numeric numpy array moved to ``arrays`` and replaced by a placeholder."""
    if isinstance(batch, np.ndarray) and batch.dtype.kind in "biufcmMV" and not batch.dtype.hasobject:
        arrays.append(batch)
        return _Leaf(len(arrays) - 1)
    return _map_containers(batch, lambda x: flatten(x, arrays))


def _rebuild_mapping(original: Mapping[Any, Any], items: dict[Any, Any]) -> Any:
    try:
        return type(original)(items)  # type: ignore[call-arg]
    except TypeError:
        return items


def batch_footprint(batch: Any) -> tuple[int, int]:
    """``(samples, bytes of numpy arrays)`` of a batch; fast for arrays and lists of arrays."""
    if type(batch) is np.ndarray:
        return (len(batch) if batch.ndim else 1), batch.nbytes
    if type(batch) is list and len(batch) == 2:  # (inputs, labels): the common case
        a, b = batch
        if type(a) is np.ndarray and type(b) is np.ndarray and a.ndim:
            return len(a), a.nbytes + b.nbytes
    arrays: list[np.ndarray[Any, Any]] = []
    flatten(batch, arrays)
    if not arrays:
        return 0, 0
    return (len(arrays[0]) if arrays[0].ndim else 1), sum(a.nbytes for a in arrays)


def unflatten(structure: Any, arrays: list[Any]) -> Any:
    """Inverse of :func:`flatten`."""
    if isinstance(structure, _Leaf):
        return arrays[structure.index]
    return _map_containers(structure, lambda x: unflatten(x, arrays))


def _aligned(offset: int) -> int:
    return -(-offset // ALIGN) * ALIGN


def _layout(arrays: list[np.ndarray[Any, Any]]) -> tuple[tuple[ArraySpec, ...], int]:
    specs, offset = [], 0
    for a in arrays:
        specs.append(ArraySpec(offset, a.dtype.str, a.shape))
        offset = _aligned(offset + a.nbytes)
    return tuple(specs), offset


SLACK = 64 << 10
"""Room left after an array placed in a new block, for the batch's small arrays (labels)."""


class BlockWriter:
    """Worker side: the worker's shared-memory blocks, reused once the consumer releases them.

    It is also the worker's allocation arena (:mod:`tinytorch.data.memory`): while a batch is
    made, large arrays the stages allocate are placed in blocks *lent* to that batch. When the
    batch is written, the block holding most of its bytes is sent as is, with the batch's other
    arrays copied after them; the other lent blocks are free again. A block's file descriptor
    is sent with the first batch that uses it.
    """

    def __init__(self, worker_id: int) -> None:
        self.worker_id = worker_id
        self._maps: dict[int, mmap.mmap] = {}
        self._addresses: dict[int, int] = {}
        self._unsent: dict[int, int] = {}  # block -> descriptor the consumer has not received
        # Free blocks, most recently released last: reused first, as the one most likely still
        # in the cache (writing a batch into a cold block cost ~80 us more per CIFAR batch).
        self._free: list[int] = []
        self._bases: dict[int, np.ndarray[Any, Any]] = {}  # block -> uint8 view of all of it
        self._lent: dict[int, int] = {}  # block -> bytes used by the batch being made
        self._next_id = 0

    def release(self, block_ids: list[int]) -> None:
        """The consumer no longer refers to these blocks: they may be overwritten."""
        self._free.extend(b for b in block_ids if b in self._maps and b not in self._free)

    def begin(self) -> None:
        """A new batch is about to be made (blocks lent to a failed one are free again)."""
        self._free.extend(b for b in self._lent if b not in self._free)
        self._lent.clear()

    def empty(self, shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
        """An array for the batch being made; large ones are placed in a lent block."""
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes < INLINE_BYTES or not shared_memory_supported():
            return np.empty(shape, dtype)
        for block, used in self._lent.items():
            start = _aligned(used)
            if start + nbytes <= len(self._maps[block]):
                self._lent[block] = start + nbytes
                return self._view(block, start, shape, dtype)
        block = self._take_block(nbytes + SLACK)
        self._lent[block] = nbytes
        return self._view(block, 0, shape, dtype)

    def write(self, batch: Any) -> tuple[Packed, int | None]:
        """The message for ``batch``, its arrays in one block; for a block the consumer has not
        mapped yet, also its file descriptor (which the caller sends and then closes)."""
        arrays: list[np.ndarray[Any, Any]] = []
        structure = flatten(batch, arrays)
        try:
            return self._pack(batch, structure, arrays)
        finally:
            self.begin()

    def _pack(
        self, batch: Any, structure: Any, arrays: list[np.ndarray[Any, Any]]
    ) -> tuple[Packed, int | None]:
        specs, nbytes = _layout(arrays)
        if nbytes < INLINE_BYTES or not shared_memory_supported():
            return Packed(batch, None, (), 0), None
        placed = [self._locate(a) for a in arrays]
        weights: dict[int, int] = {}
        for a, where in zip(arrays, placed, strict=True):
            if where is not None:
                weights[where[0]] = weights.get(where[0], 0) + a.nbytes
        if weights:
            in_place = self._pack_in_place(max(weights, key=weights.__getitem__), structure, arrays, placed)
            if in_place is not None:
                return in_place
        block = self._take_block(nbytes)
        for spec, a in zip(specs, arrays, strict=True):
            self._view(block, spec.offset, a.shape, a.dtype)[...] = a
        return self._packed(structure, block, specs, nbytes)

    def _pack_in_place(
        self,
        main: int,
        structure: Any,
        arrays: list[np.ndarray[Any, Any]],
        placed: list[tuple[int, int] | None],
    ) -> tuple[Packed, int | None] | None:
        """The batch in block ``main``, which already holds its largest arrays; ``None`` when
        the others do not fit after them."""
        size, tail, end = len(self._maps[main]), self._lent[main], 0
        specs = []
        for a, where in zip(arrays, placed, strict=True):
            if where is not None and where[0] == main:
                offset = where[1]
            else:
                offset = _aligned(tail)
                if offset + a.nbytes > size:
                    return None
                self._view(main, offset, a.shape, a.dtype)[...] = a
                tail = offset + a.nbytes
            specs.append(ArraySpec(offset, a.dtype.str, a.shape))
            end = max(end, offset + a.nbytes)
        del self._lent[main]
        return self._packed(structure, main, tuple(specs), end)

    def _packed(
        self, structure: Any, block: int, specs: tuple[ArraySpec, ...], nbytes: int
    ) -> tuple[Packed, int | None]:
        fd = self._unsent.pop(block, None)
        size = len(self._maps[block]) if fd is not None else None
        return Packed(structure, block, specs, nbytes, size), fd

    def _locate(self, a: np.ndarray[Any, Any]) -> tuple[int, int] | None:
        """``(block, offset)`` of an array lying in a lent block, else ``None``."""
        if not self._lent or not a.flags.c_contiguous:
            return None
        address = a.__array_interface__["data"][0]
        for block in self._lent:
            offset = address - self._addresses[block]
            if offset >= 0 and offset + a.nbytes <= len(self._maps[block]):
                return block, offset
        return None

    def _view(
        self, block: int, offset: int, shape: tuple[int, ...], dtype: np.dtype[Any]
    ) -> np.ndarray[Any, Any]:
        nbytes = math.prod(shape) * dtype.itemsize
        view: np.ndarray[Any, Any] = self._bases[block][offset : offset + nbytes].view(dtype).reshape(shape)
        return view

    def _take_block(self, nbytes: int) -> int:
        free = self._free
        for i in range(len(free) - 1, -1, -1):  # the most recently released that fits
            if nbytes <= len(self._maps[free[i]]) <= 2 * nbytes + SLACK:
                return free.pop(i)
        fitting = [b for b in free if len(self._maps[b]) >= nbytes]
        if fitting:
            block = min(fitting, key=lambda b: len(self._maps[b]))
            free.remove(block)
            return block
        size = max(mmap.PAGESIZE, -(-nbytes // mmap.PAGESIZE) * mmap.PAGESIZE)
        block = self._next_id
        self._next_id += 1
        fd = os.memfd_create(f"tinytorch-w{self.worker_id}-b{block}", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, size)
            self._maps[block] = mmap.mmap(fd, size)
        except OSError:
            os.close(fd)
            raise
        self._bases[block] = np.frombuffer(self._maps[block], np.uint8)
        self._addresses[block] = self._bases[block].ctypes.data
        self._unsent[block] = fd
        return block

    def close(self) -> None:
        for fd in self._unsent.values():
            os.close(fd)
        self._bases.clear()
        for m in self._maps.values():
            with contextlib.suppress(BufferError):  # an array of the last batch may still view it
                m.close()
        self._maps.clear()
        self._unsent.clear()
        self._free.clear()
        self._lent.clear()


class BlockReader:
    """Consumer side: maps workers' blocks and builds batches whose arrays view them."""

    def __init__(self) -> None:
        self._maps: dict[tuple[int, int], mmap.mmap] = {}
        self._released: dict[int, list[int]] = {}
        self._lock = threading.Lock()

    def attach(self, worker_id: int, block: int, fd: int, size: int) -> None:
        """Map a new block of ``worker_id`` from its file descriptor (closed here)."""
        try:
            self._maps[(worker_id, block)] = mmap.mmap(fd, size)
        finally:
            os.close(fd)

    def read(self, worker_id: int, packed: Packed) -> Any:
        """The batch of ``packed``; its arrays view the block until they are garbage."""
        if packed.block is None:
            return packed.structure
        buffer = self._maps[(worker_id, packed.block)]
        base = np.frombuffer(buffer, dtype=np.uint8, count=packed.nbytes)
        weakref.finalize(base, self._release, worker_id, packed.block)
        arrays = [
            base[s.offset : s.offset + _nbytes(s)].view(np.dtype(s.dtype)).reshape(s.shape)
            for s in packed.specs
        ]
        return unflatten(packed.structure, arrays)

    def discard(self, worker_id: int, packed: Packed) -> None:
        """A result nobody will read: release its block at once."""
        if packed.block is not None:
            self._release(worker_id, packed.block)

    def _release(self, worker_id: int, block: int) -> None:
        with self._lock:
            self._released.setdefault(worker_id, []).append(block)

    def take_released(self, worker_id: int) -> list[int]:
        """Blocks of ``worker_id`` released since the last call (sent with the next task)."""
        with self._lock:
            return self._released.pop(worker_id, [])

    def close(self) -> None:
        """Drop this reader's mappings; blocks still viewed by live arrays stay valid."""
        for m in self._maps.values():
            # A batch the user keeps may still view it: then it is freed with its last array.
            with contextlib.suppress(BufferError):
                m.close()
        self._maps.clear()


def _nbytes(spec: ArraySpec) -> int:
    return math.prod(spec.shape) * np.dtype(spec.dtype).itemsize

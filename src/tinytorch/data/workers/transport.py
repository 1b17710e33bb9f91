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

Every numpy dtype travels as itself (the layout carries the ``numpy.dtype``, not its string, so
structured and subarray fields, byte order and datetime units survive), and so do torch CPU
tensors: :func:`flatten` takes each tensor out as a numpy view of its memory (a dtype numpy
lacks, such as bfloat16, as the integers of its width) and :func:`unflatten` rebuilds it with
``torch.from_numpy``, so tensor batches also travel in shared memory and never through torch's
own sharing (file descriptors per tensor). torch is never imported here unless a batch holds a
tensor.

Where ``os.memfd_create`` does not exist (macOS, Windows), batches are pickled instead.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import mmap
import os
import sys
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

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
class _TensorLeaf:
    """A torch tensor moved as the numpy array ``index``.

    ``dtype`` is the tensor's dtype name (``"bfloat16"``); ``raw``: the array holds the
    tensor's bytes as integers of the same width (numpy has no such dtype).
    """

    index: int
    dtype: str
    raw: bool


@dataclass(frozen=True)
class ArraySpec:
    """Where one array lies in a block: byte ``offset``, ``dtype`` and ``shape``."""

    offset: int
    dtype: np.dtype[Any]
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Packed:
    """A batch as sent from a worker.

    Attributes:
        structure: the batch with arrays replaced by placeholders (pickled when sent).
        block: id of the worker's block holding the arrays, or ``None`` when the batch is
            inline: its arrays are then laid out in ``inline``, which travels in the message.
        specs: layout of each array in the block (or in ``inline``).
        nbytes: bytes of the block used by this batch.
        new_block_size: set when the block is new: its size; its file descriptor follows.
        inline: the bytes of an inline batch's arrays. Raw bytes, not pickled arrays: numpy
            pickles a non-native byte order array as a native one with pickle's default
            protocol (what ``Connection.send`` uses), so the dtype would not survive.
        retired: blocks the worker has given up (see ``BlockWriter.release``): the consumer
            drops its mappings of them.
    """

    structure: Any
    block: int | None
    specs: tuple[ArraySpec, ...]
    nbytes: int
    new_block_size: int | None = None
    inline: bytearray | None = None
    retired: tuple[int, ...] = ()


def _map_containers(obj: Any, fn: Any) -> Any:
    """``obj`` rebuilt with ``fn(key, child)`` applied to each child when it is a container
    (namedtuple, list, tuple, mapping: the same type where possible), else ``obj`` itself."""
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(fn(i, x) for i, x in enumerate(obj)))
    if isinstance(obj, (list, tuple)):
        return type(obj)(fn(i, x) for i, x in enumerate(obj))
    if isinstance(obj, Mapping):
        items = {k: fn(k, v) for k, v in obj.items()}
        return items if type(obj) is dict else _rebuild_mapping(obj, items)
    return obj


TensorMode = Literal["arrays", "send", "keep"]


def flatten(batch: Any, arrays: list[Any], *, tensors: TensorMode = "arrays") -> Any:
    """``batch`` with each array moved to ``arrays`` and replaced by a placeholder.

    Numeric, string, bytes, datetime and structured numpy arrays (``ndarray`` and
    ``memmap``; not object arrays, nor subclasses such as masked arrays, which stay in the
    structure) are moved. torch CPU tensors with a strided layout are moved too: with
    ``tensors="arrays"`` as numpy views of their memory (detached), with ``tensors="send"``
    the same but refusing a tensor that requires grad, with ``tensors="keep"`` as the tensors
    themselves. Other tensors (CUDA, sparse, quantized, subclasses) stay in the structure.

    Raises:
        RuntimeError: ``tensors="send"`` and a tensor requires grad (the message names its
            field): its autograd graph cannot leave the worker process (torch's workers
            raise a ``RuntimeError`` there too).
    """
    kind = type(batch)
    if kind is np.ndarray or kind is np.memmap:
        if batch.dtype.hasobject:
            return batch
        arrays.append(batch)
        return _Leaf(len(arrays) - 1)
    torch = sys.modules.get("torch")
    if torch is not None and kind is torch.Tensor:
        return _flatten_tensor(torch, batch, arrays, tensors)

    def child(key: Any, x: Any) -> Any:
        try:
            return flatten(x, arrays, tensors=tensors)
        except _RequiresGradError as e:  # the field's path is built on the way out only
            e.path.insert(0, key)
            raise

    return _map_containers(batch, child)


class _RequiresGradError(RuntimeError):
    def __init__(self, path: list[Any] | None = None) -> None:
        super().__init__()
        self.path: list[Any] = path or []

    def __reduce__(self) -> Any:  # the path travels with the error from the worker
        return type(self), (list(self.path),)

    def __str__(self) -> str:
        field = "field " + "".join(f"[{p!r}]" for p in self.path) if self.path else "the batch"
        return (
            f"{field} is a tensor that requires grad; its autograd graph cannot leave a worker "
            "process. Fix: return tensor.detach() from the dataset, or use worker_type='thread' "
            "or num_workers=0 to keep the graph"
        )


def _flatten_tensor(torch: Any, tensor: Any, arrays: list[Any], mode: TensorMode) -> Any:
    if tensor.device.type != "cpu" or tensor.layout != torch.strided or tensor.is_quantized:
        return tensor
    if mode == "keep":
        arrays.append(tensor)
        return _Leaf(len(arrays) - 1)
    if mode == "send" and tensor.requires_grad:
        raise _RequiresGradError
    plain = tensor.detach().resolve_conj().resolve_neg()
    raw = False
    try:
        view = plain.numpy()
    except TypeError:  # a dtype numpy lacks (bfloat16, float8...): its bytes as integers
        integer = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}.get(plain.element_size())
        if integer is None:
            return tensor
        view, raw = plain.view(integer).numpy(), True
    arrays.append(view)
    return _TensorLeaf(len(arrays) - 1, str(tensor.dtype).removeprefix("torch."), raw)


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
    """Inverse of :func:`flatten`: tensors taken out as arrays come back as tensors viewing them."""
    if isinstance(structure, _Leaf):
        return arrays[structure.index]
    if isinstance(structure, _TensorLeaf):
        return _rebuild_tensor(structure, arrays[structure.index])
    return _map_containers(structure, lambda _, x: unflatten(x, arrays))


def _rebuild_tensor(leaf: _TensorLeaf, array: Any) -> Any:
    torch = sys.modules.get("torch") or importlib.import_module("torch")  # a tensor was sent: torch exists
    if not isinstance(array, np.ndarray):  # already a tensor (tensors="keep", or converted)
        return array
    tensor = torch.from_numpy(array)
    return tensor.view(getattr(torch, leaf.dtype)) if leaf.raw else tensor


def _aligned(offset: int) -> int:
    return -(-offset // ALIGN) * ALIGN


def _layout(arrays: list[np.ndarray[Any, Any]]) -> tuple[tuple[ArraySpec, ...], int]:
    specs, offset = [], 0
    for a in arrays:
        specs.append(ArraySpec(offset, a.dtype, a.shape))
        offset = _aligned(offset + a.nbytes)
    return tuple(specs), offset


SLACK = 64 << 10
"""Room left after an array placed in a new block, for the batch's small arrays (labels)."""

MAX_FREE_BLOCKS = 4
"""Free blocks a worker keeps for reuse (its prefetch window's worth); more are given back.

A consumer that keeps many batches (``list(loader)``) makes a worker create a block per batch;
once those batches are dropped, a persistent worker would otherwise keep every block (300 MB
per worker after one CIFAR epoch kept whole) for as long as it lives."""


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
        self._retired: list[int] = []  # given back; the consumer is told with the next batch
        self._next_id = 0

    def release(self, block_ids: list[int]) -> None:
        """The consumer no longer refers to these blocks: they may be overwritten.

        Beyond :data:`MAX_FREE_BLOCKS` free blocks, the least recently released are given back
        (unmapped and closed here, and the consumer drops its mapping when the next batch tells
        it), so memory is returned to the system once both sides let go.
        """
        self._free.extend(b for b in block_ids if b in self._maps and b not in self._free)
        while len(self._free) > MAX_FREE_BLOCKS:
            self._retire(self._free.pop(0))

    def _retire(self, block: int) -> None:
        self._bases.pop(block, None)
        self._addresses.pop(block, None)
        fd = self._unsent.pop(block, None)
        if fd is not None:
            os.close(fd)  # never sent: the consumer never mapped it
        else:
            self._retired.append(block)
        with contextlib.suppress(BufferError):
            self._maps.pop(block).close()

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
        structure = flatten(batch, arrays, tensors="send")
        try:
            return self._pack(structure, arrays)
        finally:
            self.begin()

    def _pack(self, structure: Any, arrays: list[np.ndarray[Any, Any]]) -> tuple[Packed, int | None]:
        specs, nbytes = _layout(arrays)
        if nbytes < INLINE_BYTES or not shared_memory_supported():
            payload = bytearray(nbytes)
            for spec, a in zip(specs, arrays, strict=True):
                _array_in(payload, spec)[...] = a
            return Packed(structure, None, specs, nbytes, inline=payload, retired=self._take_retired()), None
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
            specs.append(ArraySpec(offset, a.dtype, a.shape))
            end = max(end, offset + a.nbytes)
        del self._lent[main]
        return self._packed(structure, main, tuple(specs), end)

    def _packed(
        self, structure: Any, block: int, specs: tuple[ArraySpec, ...], nbytes: int
    ) -> tuple[Packed, int | None]:
        fd = self._unsent.pop(block, None)
        size = len(self._maps[block]) if fd is not None else None
        return Packed(structure, block, specs, nbytes, size, retired=self._take_retired()), fd

    def _take_retired(self) -> tuple[int, ...]:
        retired, self._retired = tuple(self._retired), []
        return retired

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
        self.forget(worker_id, packed.retired)
        if packed.block is None:
            payload = packed.inline if packed.inline is not None else bytearray()
            return unflatten(packed.structure, [_array_in(payload, s) for s in packed.specs])
        buffer = self._maps[(worker_id, packed.block)]
        base = np.frombuffer(buffer, dtype=np.uint8, count=packed.nbytes)
        weakref.finalize(base, self._release, worker_id, packed.block)
        arrays = [base[s.offset : s.offset + _nbytes(s)].view(s.dtype).reshape(s.shape) for s in packed.specs]
        return unflatten(packed.structure, arrays)

    def discard(self, worker_id: int, packed: Packed) -> None:
        """A result nobody will read: release its block at once."""
        self.forget(worker_id, packed.retired)
        if packed.block is not None:
            self._release(worker_id, packed.block)

    def forget(self, worker_id: int, blocks: tuple[int, ...]) -> None:
        """Drop the mappings of blocks ``worker_id`` gave back (no array views them any more)."""
        for block in blocks:
            mapping = self._maps.pop((worker_id, block), None)
            if mapping is not None:
                with contextlib.suppress(BufferError):
                    mapping.close()

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


def _array_in(buffer: bytearray, spec: ArraySpec) -> np.ndarray[Any, Any]:
    """The array ``spec`` describes in ``buffer`` (a view: writable, no copy)."""
    count = math.prod(spec.shape)
    flat: np.ndarray[Any, Any] = np.frombuffer(buffer, dtype=spec.dtype, count=count, offset=spec.offset)
    return flat.reshape(spec.shape)


def _nbytes(spec: ArraySpec) -> int:
    return math.prod(spec.shape) * spec.dtype.itemsize

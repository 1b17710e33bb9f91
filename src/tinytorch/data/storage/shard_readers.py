"""Two ways to read samples from shard files, behind one interface (:class:`ShardReader`).

* :class:`SpanReader` (Linux): every shard mapped back to back in one range of virtual memory
  (:class:`~tinytorch.data.storage.span.ShardSpan`); a batch is one gather per field, however
  many shards it touches.
* :class:`MappedReader` (elsewhere, or where the span cannot be reserved): each shard mapped on
  its own when first needed; a batch is one gather per field per shard it touches.

Both take ``(shards, rows)`` (see :class:`~tinytorch.data.storage.shard_index.ShardIndex`),
return the same columns, and make the same checks (:mod:`~tinytorch.data.storage.shard_files`)
at the same moments: files at open, checksums before a shard's first read, the size of every
shard a batch touches before reading it. ``max_open_shards`` means
the same for both (:class:`~tinytorch.data.storage.shard_checks.InUse`): at most that many
shards in use; one entering is read in whole, one leaving is dropped from this process's memory.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import threading
import weakref
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.storage.shard_checks import InUse, Verifier, fork_safe
from tinytorch.data.storage.shard_files import (
    Identity,
    check_path,
    check_size,
    check_unchanged,
    data_lengths,
    open_shard,
    stat_shard,
)
from tinytorch.data.storage.shard_index import group_by_shard, touched_shards
from tinytorch.data.storage.shards import CorruptShardError, Manifest, record_bytes
from tinytorch.data.storage.span import ShardSpan, SpanError, gather_records, record_rows, span_supported

__all__ = ["MappedReader", "ShardReader", "SpanReader", "grid_offset", "open_reader"]


class ShardReader(Protocol):
    """Reads samples of a shard dataset; one implementation is chosen when the dataset opens.

    Lifecycle: a reader is created open in the process that creates it; :meth:`close` releases
    its mappings and files, and the next :meth:`read` opens it again. A pickled reader arrives
    closed (mappings never travel) and opens in its new process on first read. A forked process
    keeps using the parent's mappings. Every method may be called from several threads at once.
    """

    def read(self, shards: NDArray[np.intp], rows: NDArray[np.intp]) -> dict[str, Any]:
        """Every field of the samples at ``rows`` of ``shards`` (1-D intp arrays of one length):
        ``(n, *shape)`` arrays for fixed-shape fields, lists of ``bytes`` / ``str`` for
        variable-size ones.

        Raises:
            CorruptShardError: a shard's checksum differs, or a file changed since it was opened.
        """
        ...

    def read_ahead(self, shards: Sequence[int]) -> threading.Thread | None:
        """Start reading ``shards`` into the page cache in the background (``None``: not done)."""
        ...

    def in_use(self) -> list[int]:
        """The shards in use in this process, earliest entered first."""
        ...

    @property
    def entries(self) -> int:
        """How many times a shard entered use in this process."""
        ...

    def check_files(self) -> None:
        """Check every shard file against its state when the dataset was opened.

        Raises:
            CorruptShardError: naming the first file that changed.
        """
        ...

    def close(self) -> None:
        """Release this process's mappings and files (idempotent)."""
        ...


def grid_offset(first: NDArray[np.int64], record: int) -> int | None:
    """The common remainder of ``first`` (each shard's first byte of a field) modulo ``record``:
    then every record of the field lies on one grid of ``record``-byte rows. ``None`` if the
    remainders differ or records are empty."""
    if record == 0 or not len(first):
        return None
    remainders = np.unique(first % record)
    return int(remainders[0]) if len(remainders) == 1 else None


class _Base:
    """What both readers share: the files' identities, the verifier, the in-use bookkeeping."""

    def __init__(
        self,
        directory: Path,
        manifest: Manifest,
        identities: list[Identity],
        verifier: Verifier,
        max_open_shards: int | None,
    ) -> None:
        self.directory = directory
        self.manifest = manifest
        self.identities = identities
        self.verifier = verifier
        self.max_open_shards = max_open_shards
        self.num_shards = len(manifest.shards)
        self.paths = [directory / s.file for s in manifest.shards]
        self.sizes = [s.nbytes for s in manifest.shards]
        self.reset_locks()
        fork_safe(self)
        self._state: Any = None

    def reset_locks(self) -> None:
        self._lock = threading.Lock()

    def path(self, k: int) -> Path:
        return self.paths[k]

    def _check_paths(self) -> None:
        for info, identity in zip(self.manifest.shards, self.identities, strict=True):
            stat_shard(self.directory, info, identity)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        state["_state"] = None  # mappings and descriptors belong to one process
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.reset_locks()
        fork_safe(self)


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def fd_budget() -> int:
    """How many shard files a span keeps open (for the per-batch size check): a quarter of this
    process's limit of open files, so that thousands of shards never exhaust it."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return 256
    return 1 << 30 if soft == resource.RLIM_INFINITY else soft // 4


class _SpanField(NamedTuple):
    """Where one field's records are in the span, per shard.

    Fixed-shape field on a grid (``rows`` not None): sample ``r`` of shard ``k`` is
    ``rows[base[k] + r]``; off the grid: it starts at byte ``base[k] + r * record``. Variable-size
    field: its end offsets ``r`` and ``r + 1`` are ``ends[base[k] + r]`` and the next, its values
    start at byte ``data[k]`` and take ``length[k]`` bytes.
    """

    base: NDArray[np.int64]
    record: int
    rows: NDArray[Any] | None
    data: NDArray[np.int64] | None = None
    length: NDArray[np.int64] | None = None


class _SpanState:
    """One process's open span: descriptors, mapping, field positions, readiness.

    The shard files stay open (``fds``) while there are at most :func:`fd_budget` of them; with
    more, they are closed once mapped, size checks go by path and checksums reopen the file.
    """

    def __init__(self, reader: SpanReader) -> None:
        manifest = reader.manifest
        fds: list[int] = []
        self._finalizer = weakref.finalize(self, _close_all, fds)
        self.identities = []
        lengths = []
        try:
            for k, info in enumerate(manifest.shards):
                fd, identity = open_shard(reader.directory, info, reader.identities[k])
                fds.append(fd)
                self.identities.append(identity)
                lengths.append(data_lengths(fd, reader.path(k), manifest, k))
            records = (*(record_bytes(f) for f in manifest.fields), 8)  # 8: end offsets
            self.span = ShardSpan(fds, [s.nbytes for s in manifest.shards], record_sizes=records)
        except BaseException:
            self._finalizer()
            raise
        self.fds: list[int] | None = fds
        if len(fds) > fd_budget():
            self._finalizer()  # the mappings need no descriptor
            self.fds = None
        self.ends = self.span.data.view("<i8")
        self.bytes = self.span.data.data
        self.fields = {f.name: self._field(reader, f.name, lengths) for f in manifest.fields}
        self.in_use = InUse(reader.max_open_shards)
        # Shards needing nothing before a read (entered, checksum passed): one vector check a batch.
        self.ready = np.zeros(reader.num_shards, dtype=bool)

    def _field(self, reader: SpanReader, name: str, lengths: list[dict[str, int]]) -> _SpanField:
        field = next(f for f in reader.manifest.fields if f.name == name)
        offsets = np.array([s.offsets[name] for s in reader.manifest.shards], dtype=np.int64)
        first = self.span.starts + offsets
        if field.kind != "array":
            data = self.span.starts + np.array([s.offsets[name + ".data"] for s in reader.manifest.shards])
            length = np.array([n[name] for n in lengths], dtype=np.int64)
            return _SpanField(first // 8, 8, None, data.astype(np.int64), length)
        record = record_bytes(field)
        r0 = grid_offset(first, record)
        if r0 is not None:
            rows = record_rows(self.span.data, r0, np.dtype(field.dtype), field.shape)
            if rows is not None:
                return _SpanField((first - r0) // record, record, rows)
        return _SpanField(first, record, None)

    @contextlib.contextmanager
    def descriptor(self, reader: SpanReader, k: int) -> Iterator[int]:
        """An open descriptor of shard ``k``'s file (reopened and checked if none is kept)."""
        if self.fds is not None:
            yield self.fds[k]
            return
        fd, _ = open_shard(reader.directory, reader.manifest.shards[k], self.identities[k])
        try:
            yield fd
        finally:
            os.close(fd)


def _variable(
    view: memoryview,
    lo: NDArray[np.int64],
    hi: NDArray[np.int64],
    start: NDArray[np.int64],
    length: NDArray[np.int64],
    text: bool,
    where: tuple[Any, str, NDArray[np.intp]],
) -> list[Any]:
    """Values ``view[start + lo : start + hi]`` of one variable-size field, each checked to lie
    within its shard's ``length`` bytes of values first (vectorized): the end offsets are read
    from the file, which may have changed since it was checked."""
    bad = (lo < 0) | (lo > hi) | (hi > length)
    if bad.any():
        reader, name, shards = where
        p = int(np.flatnonzero(bad)[0])
        raise CorruptShardError(
            reader.path(int(shards[p])),
            f"field {name!r}'s end offsets",
            f"0 <= start <= end <= {int(length[p])}",
            f"start {int(lo[p])}, end {int(hi[p])}",
        )
    values = [view[b:e].tobytes() for b, e in zip((start + lo).tolist(), (start + hi).tolist(), strict=True)]
    if not text:
        return values
    try:
        return [v.decode() for v in values]
    except UnicodeDecodeError as e:
        reader, name, shards = where
        raise CorruptShardError(
            reader.path(int(shards[0])), f"field {name!r}", "UTF-8 text", f"undecodable bytes ({e})"
        ) from e


class SpanReader(_Base):
    """All shards in one span (Linux): one gather per field per batch. See :class:`ShardReader`.

    Raises:
        SpanError: the span could not be reserved or mapped (use :class:`MappedReader`).
        CorruptShardError: a shard file is missing, of another size or changed since
            ``identities`` were taken.
    """

    def __init__(
        self,
        directory: Path,
        manifest: Manifest,
        identities: list[Identity],
        verifier: Verifier,
        max_open_shards: int | None,
    ) -> None:
        super().__init__(directory, manifest, identities, verifier, max_open_shards)
        self._opened()

    def _opened(self) -> _SpanState:
        state: _SpanState | None = self._state
        if state is not None:
            return state
        with self._lock:
            if self._state is None:
                self._state = _SpanState(self)
            return self._state  # type: ignore[no-any-return]

    def read(self, shards: NDArray[np.intp], rows: NDArray[np.intp]) -> dict[str, Any]:
        state = self._opened()
        touched = touched_shards(shards, self.num_shards)
        fds, paths, sizes = state.fds, self.paths, self.sizes
        if fds is not None:
            for k in touched.tolist():  # ~0.3 us a shard: a truncated file must not SIGBUS the reader
                check_size(fds[k], paths[k], sizes[k])
        else:
            for k in touched.tolist():
                check_path(paths[k], state.identities[k])
        if not state.ready[touched].all():
            self._prepare(state, touched.tolist())
        columns: dict[str, Any] = {}
        for field in self.manifest.fields:
            where = state.fields[field.name]
            if field.kind != "array":
                assert where.data is not None
                assert where.length is not None
                entry = where.base[shards] + rows
                columns[field.name] = _variable(
                    state.bytes,
                    state.ends[entry],
                    state.ends[entry + 1],
                    where.data[shards],
                    where.length[shards],
                    field.kind == "str",
                    (self, field.name, shards),
                )
            elif where.rows is not None:  # one take of whole rows
                columns[field.name] = np.take(where.rows, where.base[shards] + rows, axis=0)
            else:
                raw = gather_records(state.span.data, where.base[shards] + rows * where.record, where.record)
                columns[field.name] = raw.view(np.dtype(field.dtype)).reshape((len(rows), *field.shape))
        return columns

    def _prepare(self, state: _SpanState, shards: list[int]) -> None:
        """Shards entering use: checksums checked, and with ``max_open_shards`` read in whole
        (if not cached); the earliest entered beyond it released."""
        self.verifier.ensure(shards, partial(state.descriptor, self), state.identities.__getitem__)
        with self._lock:  # bookkeeping only: reading a shard in takes milliseconds
            entered, left = state.in_use.enter(shards)
            state.ready[shards] = True
            state.ready[left] = False  # may include shards of this very batch
        if self.max_open_shards is None:
            return
        # Outside the lock, so other threads' reads of other shards go on meanwhile; a shard
        # released here while another thread enters it again is only faulted back in.
        for k in entered:
            state.span.prefetch(k)
        for k in left:
            state.span.release(k)

    def read_ahead(self, shards: Sequence[int]) -> threading.Thread | None:
        """Read ``shards`` into the page cache in a background thread, checking their checksums
        on the way; this process keeps no mapping of those not in use."""
        if not shards:
            return None
        state = self._opened()
        wanted = list(shards)

        def read() -> None:
            # No reader lock here: a worker forked while this thread held one would inherit it
            # locked. Racing a reader that starts using shard k only costs it page faults.
            for k in wanted:
                state.span.prefetch(k)
                with contextlib.suppress(CorruptShardError, OSError):  # raised again where it is read
                    self.verifier.ensure([k], partial(state.descriptor, self), state.identities.__getitem__)
                if k not in state.in_use:
                    state.span.release(k)

        thread = threading.Thread(target=read, name="tinytorch-read-ahead", daemon=True)
        thread.start()
        return thread

    def in_use(self) -> list[int]:
        state: _SpanState | None = self._state
        return [] if state is None else state.in_use.shards()

    @property
    def entries(self) -> int:
        state: _SpanState | None = self._state
        return 0 if state is None else state.in_use.entries

    def check_files(self) -> None:
        state: _SpanState | None = self._state
        if state is not None and state.fds is not None:
            for k, fd in enumerate(state.fds):
                check_unchanged(fd, self.path(k), state.identities[k])
        self._check_paths()

    def close(self) -> None:
        # Dropped, not unmapped here: a read still running in another thread holds the state,
        # and the range is unmapped (and the files closed) when the last holder lets go.
        with self._lock:
            self._state = None


class _ShardFile:
    """One shard mapped on its own; owns its descriptor and mapping (released when dropped)."""

    def __init__(self, reader: MappedReader, k: int, populate: bool) -> None:
        info = reader.manifest.shards[k]
        fd, self.identity = open_shard(reader.directory, info, reader.identities[k])
        self._finalizer = weakref.finalize(self, os.close, fd)
        self.fd = fd
        path = reader.path(k)
        self.lengths = data_lengths(fd, path, reader.manifest, k)
        self.map: NDArray[np.uint8] = _map_file(fd, info.nbytes, populate)
        self.bytes = self.map.data
        self.columns: dict[str, Any] = {}
        for field in reader.manifest.fields:
            start = info.offsets[field.name]
            if field.kind == "array":
                dtype = np.dtype(field.dtype)
                count = info.samples * int(np.prod(field.shape, dtype=np.int64))
                flat = np.frombuffer(self.map, dtype=dtype, count=count, offset=start)
                self.columns[field.name] = flat.reshape((info.samples, *field.shape))
            else:
                self.columns[field.name] = np.frombuffer(
                    self.map, dtype="<i8", count=info.samples + 1, offset=start
                )


def _map_file(fd: int, size: int, populate: bool) -> NDArray[np.uint8]:
    """Map a shard read-only; with ``populate`` its page-table entries filled at once
    (``MAP_POPULATE``: one sequential pass instead of a page fault per page on first touch)."""
    if size == 0:
        return np.empty(0, dtype=np.uint8)
    if hasattr(mmap, "MAP_SHARED"):
        flags = mmap.MAP_SHARED | (getattr(mmap, "MAP_POPULATE", 0) if populate else 0)
        mapped = mmap.mmap(fd, size, flags=flags, prot=mmap.PROT_READ)
    else:  # Windows
        mapped = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
    return np.frombuffer(mapped, dtype=np.uint8)


class _MappedState:
    def __init__(self, limit: int | None) -> None:
        self.files: dict[int, _ShardFile] = {}
        self.in_use = InUse(limit)


class MappedReader(_Base):
    """Each shard mapped on its own when needed: one gather per field per shard a batch touches.

    With ``max_open_shards`` a shard entering is mapped with its pages read in at once and one
    leaving is unmapped (once no read uses it); without, shards stay mapped and pages are read
    as touched. See :class:`ShardReader`.
    """

    def __init__(
        self,
        directory: Path,
        manifest: Manifest,
        identities: list[Identity],
        verifier: Verifier,
        max_open_shards: int | None,
    ) -> None:
        super().__init__(directory, manifest, identities, verifier, max_open_shards)
        self._state = _MappedState(max_open_shards)

    def _opened(self) -> _MappedState:
        state: _MappedState | None = self._state
        if state is None:
            with self._lock:
                if self._state is None:
                    self._state = _MappedState(self.max_open_shards)
                state = self._state
        return state

    def _files(self, shards: list[int]) -> dict[int, _ShardFile]:
        """The mapped files of ``shards`` (mapping those not in use), checksums checked."""
        state = self._opened()
        with self._lock:
            have = {k: state.files[k] for k in shards if k in state.files}
        # Mapped outside the lock (reads pages in); a file another thread maps meanwhile is
        # only used for this batch.
        opened = {k: _ShardFile(self, k, self.max_open_shards is not None) for k in shards if k not in have}
        with self._lock:
            entered, left = state.in_use.enter(shards)
            for k in entered:
                state.files[k] = opened[k] if k in opened else have[k]
            for k in left:
                state.files.pop(k, None)  # unmapped when the last read using it ends
        files = {**have, **opened}
        self.verifier.ensure(
            shards, lambda k: contextlib.nullcontext(files[k].fd), lambda k: files[k].identity
        )
        return files

    def read(self, shards: NDArray[np.intp], rows: NDArray[np.intp]) -> dict[str, Any]:
        groups = group_by_shard(shards)
        files = self._files([k for k, _ in groups])
        for k, file in files.items():
            check_size(file.fd, self.paths[k], self.sizes[k])
        n = len(shards)
        columns: dict[str, Any] = {}
        for field in self.manifest.fields:
            if field.kind == "array":
                columns[field.name] = np.empty((n, *field.shape), dtype=np.dtype(field.dtype))
            else:
                columns[field.name] = [None] * n
        for k, positions in groups:
            file = files[k]
            part = rows[positions]
            single = len(positions) == n and np.array_equal(positions, np.arange(n))
            for field in self.manifest.fields:
                out = columns[field.name]
                column = file.columns[field.name]
                if field.kind != "array":
                    start = self.manifest.shards[k].offsets[field.name + ".data"]
                    values = _variable(
                        file.bytes,
                        column[part],
                        column[part + 1],
                        np.full(len(part), start, dtype=np.int64),
                        np.full(len(part), file.lengths[field.name], dtype=np.int64),
                        field.kind == "str",
                        (self, field.name, np.full(len(part), k, dtype=np.intp)),
                    )
                    for p, value in zip(positions.tolist(), values, strict=True):
                        out[p] = value
                elif single:  # one shard: gather straight into the output
                    np.take(column, part, axis=0, out=out)
                else:
                    out[positions] = np.take(column, part, axis=0)
        return columns

    def read_ahead(self, shards: Sequence[int]) -> threading.Thread | None:
        """Not done: shards are read in whole when they enter use instead."""
        return None

    def in_use(self) -> list[int]:
        return self._opened().in_use.shards()

    @property
    def entries(self) -> int:
        return self._opened().in_use.entries

    def check_files(self) -> None:
        state: _MappedState | None = self._state
        if state is not None:
            with self._lock:
                files = dict(state.files)
            for k, file in files.items():
                check_unchanged(file.fd, self.path(k), file.identity)
        self._check_paths()

    def close(self) -> None:
        with self._lock:
            self._state = None  # each file is unmapped and closed when no read uses it


def open_reader(
    directory: Path,
    manifest: Manifest,
    identities: list[Identity],
    verifier: Verifier,
    max_open_shards: int | None,
) -> ShardReader:
    """The reader for this dataset here: a :class:`SpanReader` on Linux when its address range
    can be reserved, else a :class:`MappedReader`. Chosen once, when the dataset is opened."""
    if span_supported():
        try:
            return SpanReader(directory, manifest, identities, verifier, max_open_shards)
        except SpanError:
            pass  # no address space for the span (e.g. ulimit -v): map shard by shard
    return MappedReader(directory, manifest, identities, verifier, max_open_shards)

"""Reading shards through one span of all of them (Linux): one gather per field per batch.

See :mod:`~tinytorch.data.storage.shard_readers` for the interface and what is checked when.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.storage.shard_checks import InUse, Verifier
from tinytorch.data.storage.shard_files import (
    Identity,
    check_path,
    check_size,
    check_unchanged,
    data_lengths,
    open_shard,
)
from tinytorch.data.storage.shard_index import touched_shards
from tinytorch.data.storage.shard_readers import ReaderBase, variable_values
from tinytorch.data.storage.shards import CorruptShardError, Manifest, record_bytes
from tinytorch.data.storage.span import ShardSpan, gather_records, record_rows

__all__ = ["SpanReader", "fd_budget", "grid_offset"]


def grid_offset(first: NDArray[np.int64], record: int) -> int | None:
    """The common remainder of ``first`` (each shard's first byte of a field) modulo ``record``:
    then every record of the field lies on one grid of ``record``-byte rows. ``None`` if the
    remainders differ or records are empty."""
    if record == 0 or not len(first):
        return None
    remainders = np.unique(first % record)
    return int(remainders[0]) if len(remainders) == 1 else None


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


class SpanReader(ReaderBase):
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
                columns[field.name] = variable_values(
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

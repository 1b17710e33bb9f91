"""Reading shards mapped one by one (where the span is not available): one gather per field
per shard a batch touches.

See :mod:`~tinytorch.data.storage.shard_readers` for the interface and what is checked when.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.storage.shard_checks import InUse, Verifier
from tinytorch.data.storage.shard_files import (
    Identity,
    check_size,
    check_unchanged,
    data_lengths,
    open_shard,
)
from tinytorch.data.storage.shard_index import group_by_shard
from tinytorch.data.storage.shard_readers import ReaderBase, variable_values
from tinytorch.data.storage.shards import Manifest

__all__ = ["MappedReader"]


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


class MappedReader(ReaderBase):
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
                    values = variable_values(
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

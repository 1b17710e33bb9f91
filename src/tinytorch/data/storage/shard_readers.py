"""Two ways to read samples from shard files, behind one interface (:class:`ShardReader`).

* ``SpanReader`` (Linux, :mod:`~tinytorch.data.storage.span_reader`): every shard mapped back
  to back in one range of virtual memory (:class:`~tinytorch.data.storage.span.ShardSpan`); a
  batch is one gather per field, however many shards it touches.
* ``MappedReader`` (elsewhere, or where the span cannot be reserved;
  :mod:`~tinytorch.data.storage.mapped_reader`): each shard mapped on its own when first
  needed; a batch is one gather per field per shard it touches.

Both take ``(shards, rows)`` (see :class:`~tinytorch.data.storage.shard_index.ShardIndex`),
return the same columns, and make the same checks (:mod:`~tinytorch.data.storage.shard_files`)
at the same moments: files at open, checksums before a shard's first read, the size of every
shard a batch touches before reading it. ``max_open_shards`` means the same for both
(:class:`~tinytorch.data.storage.shard_checks.InUse`): at most that many shards in use; one
entering is read in whole, one leaving is dropped from this process's memory.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from tinytorch.data.storage.shard_checks import Verifier, fork_safe
from tinytorch.data.storage.shard_files import Identity, stat_shard
from tinytorch.data.storage.shards import CorruptShardError, Manifest
from tinytorch.data.storage.span import SpanError, span_supported

__all__ = ["ReaderBase", "ShardReader", "open_reader", "variable_values"]


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


class ReaderBase:
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


def variable_values(
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


def open_reader(
    directory: Path,
    manifest: Manifest,
    identities: list[Identity],
    verifier: Verifier,
    max_open_shards: int | None,
) -> ShardReader:
    """The reader for this dataset here: a ``SpanReader`` on Linux when its address range can be
    reserved, else a ``MappedReader``. Chosen once, when the dataset is opened."""
    from tinytorch.data.storage.mapped_reader import MappedReader  # they import this module
    from tinytorch.data.storage.span_reader import SpanReader

    if span_supported():
        try:
            return SpanReader(directory, manifest, identities, verifier, max_open_shards)
        except SpanError:
            pass  # no address space for the span (e.g. ulimit -v): map shard by shard
    return MappedReader(directory, manifest, identities, verifier, max_open_shards)
